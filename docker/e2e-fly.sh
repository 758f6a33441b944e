#!/usr/bin/env bash
# End-to-end on a Fly.io stand-in: three machines of the example release on an IPv6 Docker
# network (the 6PN), each given Fly's variables (FLY_APP_NAME, FLY_PRIVATE_IP, FLY_MACHINE_ID,
# FLY_REGION, FLY_IMAGE_REF), with dnsmasq as Fly's DNS answering an AAAA record per machine for
# `<app>.internal`. No rancher-boot option: `--source auto` finds `fly` from the variables.
# Machine 2's FLY_PRIVATE_IP is written in upper case with leading zeros: its node is still named
# with Erlang's text of the address.
#
# It shows, and fails loudly when one does not hold: each machine is hello@<its v6, as
# inet:ntoa/1 writes it>, rancher-boot exported RANCHER_BOOT_PLATFORM=fly,
# DNS_CLUSTER_QUERY=hello-fly.internal and ERL_AFLAGS with -proto_dist inet6_tcp, and the three
# VMs mesh over inet6_tcp (the example's poller resolves the AAAA records, as dns_cluster does).
#
# Usage: docker/e2e-fly.sh   (as root)
# Environment: E2E_KEEP=1 keeps the containers; E2E_IMAGES names the images; E2E_RUN the
# prefix of this run's containers and network (default rbfly-PID).
set -euo pipefail

RUN=${E2E_RUN:-rbfly-$$}
LABEL=rancher-boot-e2e=$RUN
TMP=$(mktemp -d /tmp/rancher-boot-e2e-fly.XXXXXX)
# shellcheck source=docker/e2e-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e-lib.sh"

NET=$RUN-net
V6=fdaa:0:77          # the /64 of the stand-in 6PN
V4=10.213.8           # Docker wants an IPv4 subnet too; nothing uses it
DNS_IP=$V6::3         # Fly's DNS is fdaa::3
APP=hello-fly
MESH_DEADLINE=30 # seconds from the start of the third machine

dump_diagnostics() { dump_labelled_logs; }
trap cleanup_labelled EXIT
trap 'fail "interrupted"' INT TERM


main() {
    ensure_host_tools
    build_images
    build_dnsmasq
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie"
    chmod 0444 "$TMP/cookie"

    docker network create --ipv6 --subnet "$V6::/64" --subnet "$V4.0/24" --label "$LABEL" "$NET" >/dev/null \
        || fail "cannot create the IPv6 network $NET"
    local n
    : >"$TMP/dns-hosts"
    for n in 1 2 3; do printf '%s::1%d %s.internal\n' "$V6" "$n" "$APP" >>"$TMP/dns-hosts"; done
    printf '%s\n' no-resolv no-hosts addn-hosts=/etc/dnsmasq.hosts local=/internal/ domain-needed log-queries >"$TMP/dnsmasq.conf"
    docker run -d --name "$RUN-dns" --label "$LABEL" --network "$NET" --ip6 "$DNS_IP" \
        -v "$TMP/dnsmasq.conf:/etc/dnsmasq.conf:ro" -v "$TMP/dns-hosts:/etc/dnsmasq.hosts:ro" "$DNSMASQ_IMAGE" >/dev/null \
        || fail "cannot start dnsmasq"
    printf 'nameserver %s\n' "$DNS_IP" >"$TMP/resolv.conf"

    local pairs=() nodes=() private
    start=$EPOCHREALTIME
    for n in 1 2 3; do
        private=$V6::1$n
        # A variable that is not written as Erlang writes it: the node is named canonically all the same.
        ((n != 2)) || private=FDAA:0000:0077:0000:0000:0000:0000:0012
        docker run -d --name "$RUN-m$n" --label "$LABEL" --network "$NET" --ip6 "$V6::1$n" \
            -e FLY_APP_NAME=$APP -e FLY_PRIVATE_IP="$private" -e FLY_MACHINE_ID=e784079b44928$n \
            -e FLY_REGION=ams -e FLY_IMAGE_REF=registry.fly.io/$APP:deployment-01HZ0000000000000000000000 \
            -e RANCHER_BOOT_COOKIE_FILE=/run/secrets/erlang_cookie -v "$TMP/cookie:/run/secrets/erlang_cookie:ro" \
            -v "$TMP/resolv.conf:/etc/resolv.conf:ro" "$HELLO_IMAGE" >/dev/null || fail "cannot start machine $n"
        nodes+=("hello@$V6::1$n")
        pairs+=("$RUN-m$n=hello@$V6::1$n")
    done
    local took
    took=$(WAIT_FROM=$start wait_until "$MESH_DEADLINE" "three machines meshed over inet6_tcp as ${nodes[*]}" meshed_as "${pairs[@]}")
    local pair c value
    for pair in "${pairs[@]}"; do
        c=${pair%%=*}
        value=$(exported "$c" RANCHER_BOOT_PLATFORM)
        [[ $value == fly ]] || fail "$c: RANCHER_BOOT_PLATFORM is '$value', not fly"
        value=$(exported "$c" NODE_NAME)
        [[ $value == "${pair#*=}" ]] || fail "$c: NODE_NAME is '$value', not ${pair#*=}"
        value=$(exported "$c" DNS_CLUSTER_QUERY)
        [[ $value == "$APP.internal" ]] || fail "$c: DNS_CLUSTER_QUERY is '$value', not $APP.internal"
        value=$(exported "$c" ERL_AFLAGS)
        [[ $value == *"-proto_dist inet6_tcp"* ]] || fail "$c: ERL_AFLAGS is '$value', without -proto_dist inet6_tcp"
        docker logs "$c" 2>&1 | grep "^rancher-boot: info: node ${pair#*=}[ ,]" | grep -q fly \
            || fail "$c: no info line naming ${pair#*=} and fly: $(docker logs "$c" 2>&1 | grep -m1 'rancher-boot: info')"
    done
    timing "fly: 3 machines meshed over inet6_tcp after" "$took s"
    log "nodes: ${nodes[*]}"

    printf '\n[%s] PASSED in %s s\n' "$RUN" "$(since "$T0")" >&2
    printf '  %s\n' "${TIMINGS[@]}" >&2
}

main "$@"

#!/usr/bin/env bash
# End-to-end on a Nomad stand-in: three allocations of the example release on a user bridge, each
# given the variables a Nomad client gives a task in bridge mode (NOMAD_ALLOC_ID, NOMAD_JOB_NAME,
# NOMAD_GROUP_NAME, NOMAD_ALLOC_INDEX, and for the port label `epmd` NOMAD_ALLOC_IP_epmd, the
# allocation's address, and NOMAD_IP_epmd, the host's), with dnsmasq as Consul DNS answering
# `hello.service.consul`. The job sets only RANCHER_BOOT_PEER_QUERY=hello.service.consul.
#
# It shows, and fails loudly when one does not hold: each allocation is hello@<its alloc address>
# (not the host's), RANCHER_BOOT_PLATFORM=nomad, SERVICE_NAME=hello (the group),
# DNS_CLUSTER_QUERY=hello.service.consul, and the three VMs mesh.
#
# Usage: docker/e2e-nomad.sh   (as root)
# Environment: E2E_KEEP=1 keeps the containers; E2E_IMAGES names the images; E2E_RUN the
# prefix of this run's containers and network (default rbnomad-PID).
set -euo pipefail

RUN=${E2E_RUN:-rbnomad-$$}
LABEL=rancher-boot-e2e=$RUN
TMP=$(mktemp -d /tmp/rancher-boot-e2e-nomad.XXXXXX)
# shellcheck source=docker/e2e-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e-lib.sh"

NET=$RUN-net
PREFIX=10.213.9
DNS_IP=$PREFIX.2
HOST_IP=$PREFIX.1 # the "client host": what NOMAD_IP_<label> names in bridge mode
MESH_DEADLINE=30  # seconds from the start of the third allocation

dump_diagnostics() { dump_labelled_logs; }
trap cleanup_labelled EXIT
trap 'fail "interrupted"' INT TERM

main() {
    ensure_host_tools
    build_images
    build_dnsmasq
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie"
    chmod 0444 "$TMP/cookie"
    docker network create --subnet "$PREFIX.0/24" --label "$LABEL" "$NET" >/dev/null || fail "cannot create $NET"

    local n
    : >"$TMP/dns-hosts"
    for n in 0 1 2; do printf '%s.%d hello.service.consul\n' "$PREFIX" $((11 + n)) >>"$TMP/dns-hosts"; done
    printf '%s\n' no-resolv no-hosts addn-hosts=/etc/dnsmasq.hosts local=/consul/ domain-needed log-queries >"$TMP/dnsmasq.conf"
    docker run -d --name "$RUN-consul-dns" --label "$LABEL" --network "$NET" --ip "$DNS_IP" \
        -v "$TMP/dnsmasq.conf:/etc/dnsmasq.conf:ro" -v "$TMP/dns-hosts:/etc/dnsmasq.hosts:ro" "$DNSMASQ_IMAGE" >/dev/null \
        || fail "cannot start dnsmasq"
    printf 'nameserver %s\n' "$DNS_IP" >"$TMP/resolv.conf"

    local pairs=() ip start=$EPOCHREALTIME
    for n in 0 1 2; do
        ip=$PREFIX.$((11 + n))
        docker run -d --name "$RUN-alloc$n" --label "$LABEL" --network "$NET" --ip "$ip" \
            -e NOMAD_ALLOC_ID="5b1e9b3c-5d3a-4a71-9d6b-1d2c3e4f5a6$n" -e NOMAD_JOB_NAME=shop -e NOMAD_GROUP_NAME=hello \
            -e NOMAD_ALLOC_INDEX=$n -e NOMAD_TASK_NAME=hello -e NOMAD_ALLOC_IP_epmd="$ip" -e NOMAD_ALLOC_PORT_epmd=4369 \
            -e NOMAD_IP_epmd="$HOST_IP" -e NOMAD_HOST_PORT_epmd=$((24369 + n)) \
            -e RANCHER_BOOT_PEER_QUERY=hello.service.consul \
            -e RANCHER_BOOT_COOKIE_FILE=/secrets/erlang_cookie -v "$TMP/cookie:/secrets/erlang_cookie:ro" \
            -v "$TMP/resolv.conf:/etc/resolv.conf:ro" "$HELLO_IMAGE" >/dev/null || fail "cannot start allocation $n"
        pairs+=("$RUN-alloc$n=$ip")
    done
    local took
    took=$(WAIT_FROM=$start wait_until "$MESH_DEADLINE" "three allocations meshed as hello@<alloc address>" meshed "${pairs[@]}")
    local pair c value
    for pair in "${pairs[@]}"; do
        c=${pair%%=*}
        value=$(exported "$c" RANCHER_BOOT_PLATFORM)
        [[ $value == nomad ]] || fail "$c: RANCHER_BOOT_PLATFORM is '$value', not nomad"
        value=$(exported "$c" SERVICE_NAME)
        [[ $value == hello ]] || fail "$c: SERVICE_NAME is '$value', not hello"
        value=$(exported "$c" DNS_CLUSTER_QUERY)
        [[ $value == hello.service.consul ]] || fail "$c: DNS_CLUSTER_QUERY is '$value', not hello.service.consul"
        docker logs "$c" 2>&1 | grep "^rancher-boot: info: node hello@${pair#*=}[ ,]" | grep -q nomad \
            || fail "$c: no info line naming hello@${pair#*=} and nomad: $(docker logs "$c" 2>&1 | grep -m1 'rancher-boot: info')"
    done
    timing "nomad: 3 allocations meshed after" "$took s"
    log "nodes: $(printf 'hello@%s ' "${pairs[@]#*=}")"

    printf '\n[%s] PASSED in %s s\n' "$RUN" "$(since "$T0")" >&2
    printf '  %s\n' "${TIMINGS[@]}" >&2
}

main "$@"

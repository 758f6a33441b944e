#!/usr/bin/env bash
# End-to-end for mutual-TLS distribution (--dist tls): the example release in three containers on
# a Docker network of the script's own, each booted with RANCHER_BOOT_DIST=tls and a TLS
# directory laid out as a Kubernetes TLS secret (tls.crt, tls.key, ca.crt, made here by openssl:
# one certificate with the network's addresses as IP SANs, and a foreign CA's).
#
# It shows, and fails loudly when one does not hold:
#   1. the three nodes mesh (the example app's own poller, from DNS_CLUSTER_QUERY), each over
#      `-proto_dist inet_tls` (its ERL_AFLAGS and `init:get_argument(proto_dist)`), and every
#      distribution connection is TLS (`net_kernel:node_info/1` says protocol tls);
#   2. `docker exec … rancher-boot rpc '…'` (a release's rpc through passthrough: a second VM with
#      the same flags) reaches the TLS node and lists its peers;
#   3. a fourth node with the right cookie but a certificate from another CA, and a fifth with
#      the right cookie over plain TCP, are in nobody's `Node.list()`;
#   4. `docker exec … rancher-boot probe` checks EPMD and TCP and says the handshake was not
#      attempted; `docker exec … rancher-boot doctor` calls every peer `reachable`.
#
# The example release has :ssl in its extra_applications: without it the VM stops at boot with
# "Protocol 'inet_tls': not supported", which rancher-boot turns into a 78 that says so.
#
# Usage: docker/e2e-tls.sh   (as root)
# Environment: E2E_KEEP=1 keeps the containers and network; E2E_IMAGES names the images.
set -euo pipefail

RUN=rbtls-$$
LABEL=rancher-boot-e2e=$RUN
TMP=$(mktemp -d /tmp/rancher-boot-e2e-tls.XXXXXX)
# shellcheck source=docker/e2e-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e-lib.sh"

NET=$RUN
SUBNET=10.231.9
MESH_DEADLINE=60 # seconds from the first `docker run` to a full mesh over TLS

dump_diagnostics() { dump_labelled_logs; }
trap cleanup_labelled EXIT
trap 'fail "interrupted"' INT TERM

# pki NAME: a CA and, in $TMP/NAME, tls.crt (IP SANs .2 to .20 of the network), tls.key, ca.crt.
pki() {
    local name=$1 ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" sans="subjectAltName=" i
    for i in $(seq 2 20); do sans+="IP:$SUBNET.$i,"; done
    mkdir -p "$TMP/$name"
    (cd "$TMP" &&
        openssl req -x509 $ec -keyout "$name-ca.key" -out "$name/ca.crt" -days 2 -subj "/CN=$name-ca" &&
        openssl req $ec -keyout "$name/tls.key" -out "$name.csr" -subj /CN=hello &&
        printf '%s\n' "${sans%,}" >"$name.ext" &&
        openssl x509 -req -in "$name.csr" -CA "$name/ca.crt" -CAkey "$name-ca.key" -CAcreateserial \
            -out "$name/tls.crt" -days 2 -extfile "$name.ext") >"$TMP/openssl.log" 2>&1 \
        || { cat "$TMP/openssl.log" >&2; fail "openssl could not make the $name certificates"; }
    chmod 0444 "$TMP/$name"/*
}

# node N TLSDIR|-: the example release at $SUBNET.N, alias hello, TLS with TLSDIR (or plain TCP).
node() {
    local n=$1 tls=$2 env=()
    [[ $tls == - ]] || env=(-e RANCHER_BOOT_DIST=tls -e RANCHER_BOOT_TLS_DIR=/run/dist-tls -v "$TMP/$tls:/run/dist-tls:ro")
    docker run -d --name "$RUN-$n" --label "$LABEL" --network "$NET" --ip "$SUBNET.$n" --network-alias hello \
        -e RANCHER_BOOT_SOURCE=local -e RANCHER_BOOT_SERVICE=hello -e RANCHER_BOOT_COOKIE_FILE=/run/cookie \
        -v "$TMP/cookie:/run/cookie:ro" "${env[@]}" "$HELLO_IMAGE" start >/dev/null
}

# rpc N CODE: `rancher-boot rpc CODE` in container N (the release's rpc, through passthrough).
rpc() { docker exec "$RUN-$1" rancher-boot rpc "$2" 2>&1 | tr -s ' \n' ' '; }

main() {
    ensure_host_tools
    build_images
    pki good
    pki foreign
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie"
    chmod 0444 "$TMP/cookie" # the container's user reads it; the lint warns about the mode, as it should
    docker network create --label "$LABEL" --subnet "$SUBNET.0/24" "$NET" >/dev/null

    # 1. Three TLS nodes mesh.
    local start=$EPOCHREALTIME took n
    for n in 2 3 4; do node "$n" good; done
    took=$(WAIT_FROM=$start wait_until "$MESH_DEADLINE" "three TLS nodes meshed" \
        meshed "$RUN-2=$SUBNET.2" "$RUN-3=$SUBNET.3" "$RUN-4=$SUBNET.4")
    timing "three --dist tls nodes: full mesh after" "$took s"
    for n in 2 3 4; do
        [[ $(exported "$RUN-$n" ERL_AFLAGS) == "-proto_dist inet_tls -ssl_dist_optfile /tmp/rancher-boot/ssl_dist.conf" ]] \
            || fail "node $n: ERL_AFLAGS is '$(exported "$RUN-$n" ERL_AFLAGS)'"
    done

    # 2. A release's rpc beside the node, over TLS.
    local out
    out=$(rpc 2 'IO.inspect({:init.get_argument(:proto_dist), Enum.sort(Node.list()), Enum.map(Node.list(), fn n -> {:ok, i} = :net_kernel.node_info(n); elem(i[:address], 3) end)})')
    [[ $out == *'{{:ok, [[~c"inet_tls"]]}'* || $out == *"{{:ok, [['inet_tls']]}"* ]] || fail "node 2 is not on inet_tls: $out"
    [[ $out == *"[:\"hello@$SUBNET.3\", :\"hello@$SUBNET.4\"], [:tls, :tls]}"* ]] || fail "node 2's connections are not all TLS: $out"
    log "docker exec $RUN-2 rancher-boot rpc: $out"

    # 3. The right cookie but another CA, and the right cookie over plain TCP: strangers.
    node 5 foreign
    node 6 -
    wait_until 60 "the foreign-CA and plain nodes to start" >/dev/null \
        sh -c "docker exec $RUN-5 test -f /tmp/hello/self && docker exec $RUN-6 test -f /tmp/hello/self"
    local strangers=0
    for _ in $(seq 1 30); do # the app's poller tries every 2 s: 15 s of tries
        out=$(rpc 2 'IO.inspect(Enum.sort(Node.list()))')
        [[ $out != *"$SUBNET.5"* && $out != *"$SUBNET.6"* ]] || fail "a node without this CA's certificate got in: $out"
        strangers=$((strangers + 1))
        sleep 0.5
    done
    log "after 15 s of the strangers' own tries, node 2 lists: $out"
    out=$(rpc 5 'IO.inspect(Node.list())')
    [[ $out == *"[] "* ]] || fail "the foreign-CA node connected to: $out"

    # 4. probe and doctor under TLS.
    out=$(docker exec "$RUN-3" rancher-boot probe -v 2>&1) || fail "probe under TLS: $out"
    [[ $out == *"tls: epmd and tcp; the handshake was not attempted"* ]] || fail "probe under TLS said: $out"
    log "docker exec $RUN-3 rancher-boot probe -v: $out"
    local rc=0
    out=$(docker exec "$RUN-3" rancher-boot doctor 2>&1) || rc=$?
    grep -q "^$SUBNET.2 hello@$SUBNET.2 reachable: " <<<"$out" || fail "doctor under TLS (exit $rc):"$'\n'"$out"
    log "docker exec $RUN-3 rancher-boot doctor (exit $rc):"
    sed 's/^/    /' <<<"$out" >&2
    ! grep -qF "$(cat "$TMP/cookie")" <<<"$out" || fail "the doctor printed the cookie"
    if docker logs "$RUN-2" 2>&1 | grep -qF "$(cat "$TMP/cookie")"; then fail "the cookie is in a log"; fi

    printf '\n[%s] PASSED in %s s\n' "$RUN" "$(since "$T0")" >&2
    printf '  %s\n' "${TIMINGS[@]}" >&2
}

main "$@"

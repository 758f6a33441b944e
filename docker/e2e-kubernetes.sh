#!/usr/bin/env bash
# End-to-end on a Kubernetes stand-in: the example release in three containers that are given
# what a kubelet gives a pod, with dnsmasq as the cluster DNS answering the headless service the
# way CoreDNS does, in the cluster zone `k8s.test` (not cluster.local). No rancher-boot option
# names the platform: `--source auto` finds `kubernetes` from KUBERNETES_SERVICE_HOST.
#
# What each "pod" gets, as a kubelet would give it:
#   - KUBERNETES_SERVICE_HOST/PORT, and POD_IP from the downward API (pod 2 has no POD_IP: its
#     address comes from /etc/hosts, the kubelet-managed file);
#   - POD_NAMESPACE (pod 1 only), the service-account `namespace` file (pods 1 and 2; pod 3 has
#     neither, so its namespace comes from the resolv.conf search list);
#   - /etc/hosts mapping the pod's host name (and, in a StatefulSet, its FQDN) to its address;
#   - /etc/resolv.conf: `search shop.svc.k8s.test svc.k8s.test k8s.test`, `options ndots:5`,
#     the nameserver dnsmasq.
# DNS (dnsmasq): `hello.shop.svc.k8s.test` an A record per pod (the headless service); in the
# StatefulSet also `hello-N.hello.shop.svc.k8s.test`, its PTR, and SRV `_epmd._tcp.hello...`.
#
# It shows, and fails loudly when one does not hold:
#   1. Deployment (`--service hello`, name by IP): each pod is hello@<its IP>, exported
#      RANCHER_BOOT_PLATFORM=kubernetes and DNS_CLUSTER_QUERY=hello.shop.svc.k8s.test., and the
#      three mesh;
#   2. StatefulSet (`--name-by hostname`, no --service: the subdomain from /etc/hosts): each pod is
#      hello@hello-N.hello.shop.svc.k8s.test, PEER_NODES names the others by host name, and the
#      three mesh under those names (the VMs connect through -kernel sync_nodes_optional with
#      PEER_NODES_ERL, since the example's poller names peers by IP).
#
# Usage: docker/e2e-kubernetes.sh   (as root)
# Environment: E2E_KEEP=1 keeps the containers; E2E_IMAGES names the images; E2E_RUN the
# prefix of this run's containers and network (default rbk8s-PID).
set -euo pipefail

RUN=${E2E_RUN:-rbk8s-$$}
LABEL=rancher-boot-e2e=$RUN
TMP=$(mktemp -d /tmp/rancher-boot-e2e-kubernetes.XXXXXX)
# shellcheck source=docker/e2e-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e-lib.sh"

NET=$RUN-net
PREFIX=10.213.7
DNS_IP=$PREFIX.2
NS=shop
ZONE=k8s.test
SVC=hello
MESH_DEADLINE=30 # seconds from the start of the third pod

dump_diagnostics() { dump_labelled_logs; }
trap cleanup_labelled EXIT
trap 'fail "interrupted"' INT TERM

# start_dns MODE: dnsmasq at $DNS_IP with the headless service's records (MODE deployment or
# statefulset: the latter adds the per-pod names, their PTRs first, and SRV records).
start_dns() {
    local mode=$1 i conf=$TMP/dnsmasq-$1.conf hosts=$TMP/dns-hosts-$1
    : >"$hosts"
    if [[ $mode == statefulset ]]; then
        # The first line of an address gives its PTR, as CoreDNS answers for a pod with a hostname.
        for i in 0 1 2; do printf '%s.%d %s-%d.%s.%s.svc.%s\n' "$PREFIX" $((11 + i)) "$SVC" "$i" "$SVC" "$NS" "$ZONE" >>"$hosts"; done
    fi
    for i in 0 1 2; do printf '%s.%d %s.%s.svc.%s\n' "$PREFIX" $((11 + i)) "$SVC" "$NS" "$ZONE" >>"$hosts"; done
    {
        echo "no-resolv"
        echo "no-hosts"
        echo "addn-hosts=/etc/dnsmasq.hosts"
        echo "local=/$ZONE/"
        echo "domain-needed"
        echo "log-queries"
        if [[ $mode == statefulset ]]; then
            for i in 0 1 2; do echo "srv-host=_epmd._tcp.$SVC.$NS.svc.$ZONE,$SVC-$i.$SVC.$NS.svc.$ZONE,4369,0,33"; done
        fi
    } >"$conf"
    docker run -d --name "$RUN-dns-$mode" --label "$LABEL" --network "$NET" --ip "$DNS_IP" \
        -v "$conf:/etc/dnsmasq.conf:ro" -v "$hosts:/etc/dnsmasq.hosts:ro" "$DNSMASQ_IMAGE" >/dev/null \
        || fail "cannot start dnsmasq"
}

# start_pod MODE N: pod N (0..2) of the Deployment or the StatefulSet.
start_pod() {
    local mode=$1 n=$2 ip=$PREFIX.$((11 + $2)) host dir=$TMP/pod-$1-$2 args=()
    mkdir -p "$dir/sa"
    if [[ $mode == statefulset ]]; then
        host=$SVC-$n
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s.%s.%s.svc.%s\t%s\n' \
            "$ip" "$host" "$SVC" "$NS" "$ZONE" "$host" >"$dir/hosts"
        args+=(-e RANCHER_BOOT_NAME_BY=hostname -e RANCHER_BOOT_VM_ARGS=/opt/app/k8s/vm.args)
        args+=(-v "$TMP/vm.args:/opt/app/k8s/vm.args:ro")
    else
        host=$SVC-6d4cf56db6-p0d$n
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n' "$ip" "$host" >"$dir/hosts"
        args+=(-e RANCHER_BOOT_SERVICE=$SVC)
    fi
    printf 'search %s.svc.%s svc.%s %s\nnameserver %s\noptions ndots:5\n' "$NS" "$ZONE" "$ZONE" "$ZONE" "$DNS_IP" >"$dir/resolv.conf"
    printf '%s' "$NS" >"$dir/sa/namespace"
    ((n == 1)) || args+=(-e POD_IP="$ip")
    ((n != 0)) || args+=(-e POD_NAMESPACE=$NS)
    ((n == 2)) || args+=(-v "$dir/sa:/var/run/secrets/kubernetes.io/serviceaccount:ro")
    docker run -d --name "$RUN-$host" --label "$LABEL" --network "$NET" --ip "$ip" --hostname "$host" \
        -e KUBERNETES_SERVICE_HOST=$PREFIX.1 -e KUBERNETES_SERVICE_PORT=443 \
        -e RANCHER_BOOT_COOKIE_FILE=/run/secrets/erlang_cookie -v "$TMP/cookie:/run/secrets/erlang_cookie:ro" \
        -v "$dir/hosts:/etc/hosts:ro" -v "$dir/resolv.conf:/etc/resolv.conf:ro" \
        "${args[@]}" "$HELLO_IMAGE" >/dev/null || fail "cannot start pod $host"
    PODS+=("$RUN-$host")
}


# check_exports CONTAINER NODE QUERY PEERS: what rancher-boot exported to the VM.
check_exports() {
    local c=$1 value
    value=$(exported "$c" RANCHER_BOOT_PLATFORM)
    [[ $value == kubernetes ]] || fail "$c: RANCHER_BOOT_PLATFORM is '$value', not kubernetes"
    value=$(exported "$c" NODE_NAME)
    [[ $value == "$2" ]] || fail "$c: NODE_NAME is '$value', not $2"
    value=$(exported "$c" DNS_CLUSTER_QUERY)
    [[ $value == "$3" ]] || fail "$c: DNS_CLUSTER_QUERY is '$value', not $3"
    value=$(exported "$c" PEER_NODES)
    [[ $value == "$4" ]] || fail "$c: PEER_NODES is '$value', not '$4'"
    docker logs "$c" 2>&1 | grep "^rancher-boot: info: node $2[ ,]" | grep -q kubernetes \
        || fail "$c: no info line naming $2 and kubernetes: $(docker logs "$c" 2>&1 | grep -m1 'rancher-boot: info')"
}

# run_cluster MODE: three pods, meshed within the deadline; their exports checked.
run_cluster() {
    local mode=$1 n start pairs=() nodes=() peers others
    PODS=()
    start_dns "$mode"
    start=$EPOCHREALTIME
    for n in 0 1 2; do start_pod "$mode" "$n"; done
    for n in 0 1 2; do
        if [[ $mode == statefulset ]]; then
            nodes+=("hello@$SVC-$n.$SVC.$NS.svc.$ZONE")
        else
            nodes+=("hello@$PREFIX.$((11 + n))")
        fi
        pairs+=("${PODS[n]}=${nodes[n]}")
    done
    local took
    took=$(WAIT_FROM=$start wait_until "$MESH_DEADLINE" "$mode: three pods, meshed as ${nodes[*]}" meshed_as "${pairs[@]}")
    for n in 0 1 2; do
        others=()
        for peers in 0 1 2; do ((peers == n)) || others+=("${nodes[peers]}"); done
        check_exports "${PODS[n]}" "${nodes[n]}" "$SVC.$NS.svc.$ZONE." "${others[*]}"
    done
    timing "kubernetes $mode: 3 pods meshed after" "$took s"
    log "nodes: ${nodes[*]}"
    remove_labelled
}

main() {
    ensure_host_tools
    build_images
    build_dnsmasq
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie"
    chmod 0444 "$TMP/cookie"
    # The StatefulSet's VMs connect to PEER_NODES_ERL at boot (the poller names peers by IP).
    # The double quotes keep the term's single quotes: vm.args is read like a shell's words.
    printf '%s\n' '-name ${NODE_NAME}' '-kernel sync_nodes_optional "${PEER_NODES_ERL}"' \
        '-kernel sync_nodes_timeout 20000' >"$TMP/vm.args"
    docker network create --subnet "$PREFIX.0/24" --label "$LABEL" "$NET" >/dev/null || fail "cannot create $NET"

    run_cluster deployment
    run_cluster statefulset

    printf '\n[%s] PASSED in %s s\n' "$RUN" "$(since "$T0")" >&2
    printf '  %s\n' "${TIMINGS[@]}" >&2
}

main "$@"

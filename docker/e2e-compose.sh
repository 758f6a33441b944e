#!/usr/bin/env bash
# End-to-end on plain Docker Compose (docker-compose v1, the `docker-compose` command): the
# example release from docker/compose-plain.yml, with no metadata service, no fake and no
# rancher-boot option, clusters by itself. rancher-boot detects `compose` from Docker's embedded
# DNS (the PTR of its own address) and exports the service name as the peer query.
#
# It shows, and fails loudly when one does not hold:
#   1. `up --scale hello=3`: every replica is hello@<its address on the project's network>,
#      rancher-boot exported RANCHER_BOOT_PLATFORM=compose and DNS_CLUSTER_QUERY=hello and said
#      so in its info line, and every node lists the others within 10 s of the command;
#   2. `up --scale hello=5`: the two new replicas join, all within 10 s;
#   3. `down` stops every node with exit code 0.
#
# Usage: docker/e2e-compose.sh   (as root; installs docker-compose when it is missing)
# Environment: E2E_KEEP=1 keeps the project for inspection; E2E_IMAGES names the images.
set -euo pipefail

RUN=rbcompose-$$
LABEL=rancher-boot-e2e=$RUN
TMP=$(mktemp -d /tmp/rancher-boot-e2e-compose.XXXXXX)
# shellcheck source=docker/e2e-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e-lib.sh"

PROJECT=$RUN
NET=${PROJECT}_cluster
MESH_DEADLINE=10 # seconds from the compose command
UPPED=

compose() {
    HELLO_IMAGE=$HELLO_IMAGE HELLO_COOKIE_FILE=$TMP/cookie \
        docker-compose --project-name "$PROJECT" --file "$ROOT/docker/compose-plain.yml" "$@"
}

dump_diagnostics() {
    dump_labelled_logs "label=com.docker.compose.project=$PROJECT"
}

cleanup() {
    local status=$?
    if [[ ${E2E_KEEP:-} == 1 ]]; then
        log "E2E_KEEP=1: keeping the compose project $PROJECT and $TMP"
        return
    fi
    [[ -n $UPPED ]] && compose down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1
    rm -rf "$TMP"
    exit $status
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# The running replicas, one `CONTAINER=IP` per line (the address on the project's network).
replicas() {
    local c
    for c in $(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" \
        --filter label=com.docker.compose.service=hello --filter status=running); do
        printf '%s=%s\n' "$c" "$(docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAddress}}{{end}}" "$c")"
    done
}

# converged N: N replicas run, each hello@<its address>, each listing all the others.
converged() {
    local pairs
    mapfile -t pairs < <(replicas)
    ((${#pairs[@]} == $1)) || return 1
    meshed "${pairs[@]}" || return 1
    PAIRS=("${pairs[@]}")
}

check_identity() {
    local pair c ip value
    for pair in "${PAIRS[@]}"; do
        c=${pair%%=*} ip=${pair#*=}
        value=$(exported "$c" RANCHER_BOOT_PLATFORM)
        [[ $value == compose ]] || fail "replica $c (hello@$ip): RANCHER_BOOT_PLATFORM is '$value', not compose"
        value=$(exported "$c" DNS_CLUSTER_QUERY)
        [[ $value == hello ]] || fail "replica $c (hello@$ip): DNS_CLUSTER_QUERY is '$value', not hello"
        docker logs "$c" 2>&1 | grep "^rancher-boot: info: node hello@$ip[ ,]" | grep -q compose \
            || fail "replica $c: no info line naming hello@$ip and compose: $(docker logs "$c" 2>&1 | grep -m1 'rancher-boot: info')"
    done
}

# scale_to N: `up --scale hello=N`, then wait for the mesh; record the figure and boot times.
scale_to() {
    local n=$1 start=$EPOCHREALTIME took pair boots=() b
    compose up --detach --scale "hello=$n" >"$TMP/up.log" 2>&1 || { cat "$TMP/up.log" >&2; fail "docker-compose up --scale hello=$n failed"; }
    UPPED=1
    took=$(WAIT_FROM=$start wait_until "$MESH_DEADLINE" "$n replicas, each hello@<its address>, all meshed" converged "$n")
    converged "$n" || fail "$n replicas: lost the mesh just after it formed"
    check_identity
    for pair in "${PAIRS[@]}"; do
        [[ -n ${SEEN[${pair%%=*}]:-} ]] && continue
        SEEN[${pair%%=*}]=1
        b=$(boot_seconds "${pair%%=*}") || fail "cannot read the boot time of ${pair%%=*}"
        boots+=("$b")
    done
    timing "docker-compose up --scale hello=$n: full mesh after" "$took s; boot $(max_of "${boots[@]}") s (slowest of ${#boots[@]} new)"
    log "nodes: $(printf 'hello@%s ' "${PAIRS[@]#*=}")"
}

main() {
    ensure_host_tools docker-compose
    build_images
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie"
    chmod 0444 "$TMP/cookie"

    declare -gA SEEN=()
    declare -ga PAIRS=()
    scale_to 3
    scale_to 5

    local start=$EPOCHREALTIME pair code
    compose stop --timeout 10 >/dev/null 2>&1 || fail "docker-compose stop failed"
    for pair in "${PAIRS[@]}"; do
        code=$(docker inspect -f '{{.State.ExitCode}}' "${pair%%=*}")
        [[ $code == 0 ]] || fail "replica ${pair%%=*} exited with code $code on docker-compose stop"
    done
    timing "docker-compose stop: 5 nodes exited 0 in" "$(since "$start") s"

    printf '\n[%s] PASSED in %s s\n' "$RUN" "$(since "$T0")" >&2
    printf '  %s\n' "${TIMINGS[@]}" >&2
}

main "$@"

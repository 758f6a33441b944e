#!/usr/bin/env bash
# End-to-end: the blog's "show time" for real. A cluster of `hello` Elixir nodes, each started
# by rancher-boot, on a private Docker network with fake-rancher-metadata answering as
# rancher-metadata.rancher.internal. No registry is needed: every image is built here, from
# Debian packages (docker/base-image.sh) and from binaries built on this host.
#
# It shows, and fails loudly when one does not hold:
#   1. three nodes come up, each named hello@<its own container IP>, and within 15 s each
#      lists the other two in Node.list (the app's DNS poller, fed by rancher-boot's exports);
#   2. scaled to five (the two new ones named the vm.args way), all five are connected;
#   3. `docker exec C rancher-boot rpc ...` (passthrough) reaches the running node under the
#      same name and cookie, and the cookie is the Docker secret given with --cookie-file;
#   4. `docker stop` ends a node within 5 s with exit code 0, and the others drop it;
#   5. a node whose metadata answers 404 for its first 3 s waits, then joins;
#   6. every node stops within 5 s with exit code 0.
#
# Usage: docker/e2e.sh            (as root, or a user allowed to use docker and apt-get)
# Environment: E2E_KEEP=1 keeps the containers and network for inspection.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=rbe2e-$$
NET=$RUN
LABEL=rancher-boot-e2e=$RUN
TARGET=x86_64-unknown-linux-musl
RANCHER_BOOT_IMAGE=rancher-boot:latest
FAKE_IMAGE=rancher-boot/fake-rancher-metadata:latest
HELLO_IMAGE=rancher-boot/hello:latest
BASE_IMAGE=rancher-boot/debian:bookworm
SECRET_IN_CONTAINER=/run/secrets/erlang_cookie
CLUSTER_DEADLINE=15 # seconds, from the issue: "within 15 s each lists the other two"
STOP_DEADLINE=5     # seconds, from the issue: "docker stop ends a node within 5 s"

T0=$EPOCHREALTIME
TMP=$(mktemp -d /tmp/rancher-boot-e2e.XXXXXX)
declare -a TIMINGS=()

# --- output -------------------------------------------------------------------------------

since() { # elapsed seconds since $1 (an $EPOCHREALTIME), with millisecond precision
    local start=${1/./} now=${EPOCHREALTIME/./}
    local us=$((now - start))
    printf '%d.%03d' $((us / 1000000)) $((us % 1000000 / 1000))
}
log() { printf '[e2e %7ss] %s\n' "$(since "$T0")" "$*" >&2; }
timing() { TIMINGS+=("$(printf '%-58s %8ss' "$1" "$2")"); log "$1: $2 s"; }

dump_diagnostics() {
    local c
    for c in $(docker ps -aq --filter "label=$LABEL" 2>/dev/null); do
        printf '\n----- %s (%s) -----\n' "$(docker inspect -f '{{.Name}} {{.State.Status}} exit={{.State.ExitCode}}' "$c")" "$c" >&2
        docker logs --tail 60 "$c" 2>&1 | sed 's/^/  | /' >&2 || true
    done
}

fail() {
    printf '\n[e2e] FAILED: %s\n' "$*" >&2
    dump_diagnostics
    exit 1
}

cleanup() {
    local status=$?
    if [[ ${E2E_KEEP:-} == 1 ]]; then
        log "E2E_KEEP=1: keeping containers (label $LABEL), network $NET and $TMP"
        return
    fi
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL" 2>/dev/null || true)
    [[ -n $ids ]] && docker rm -f $ids >/dev/null 2>&1 || true
    docker network rm "$NET" >/dev/null 2>&1 || true
    rm -rf "$TMP"
    exit $status
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every 100 ms until it succeeds; fail
# at the deadline. Prints the time it took on stdout.
wait_until() {
    local deadline=$1 what=$2 start=$EPOCHREALTIME
    shift 2
    local limit=$(( ${start/./} + deadline * 1000000 ))
    until "$@"; do
        (( ${EPOCHREALTIME/./} < limit )) || fail "$what: not within $deadline s"
        sleep 0.1
    done
    since "$start"
}

# --- prerequisites ----------------------------------------------------------------------------

ensure_host_tools() {
    command -v docker >/dev/null || fail "docker is not installed"
    docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable"
    command -v cargo >/dev/null || fail "cargo is not installed (install a Rust toolchain with rustup)"
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v musl-gcc >/dev/null || missing+=(musl-tools)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
        log "rustup target add $TARGET"
        rustup target add "$TARGET" >/dev/null
    fi
}

# --- images -----------------------------------------------------------------------------------

build_binaries() {
    local start=$EPOCHREALTIME target_dir
    log "cargo build --release --target $TARGET"
    (cd "$ROOT" && cargo build --release --locked --target "$TARGET" --bins --quiet) \
        || fail "cargo build failed"
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --offline 2>/dev/null \
        | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
    [[ -n $target_dir ]] || target_dir=$ROOT/target
    BIN_DIR=$target_dir/$TARGET/release
    local bin
    for bin in rancher-boot fake-rancher-metadata; do
        [[ -x $BIN_DIR/$bin ]] || fail "$BIN_DIR/$bin was not built"
        if grep -q -e ld-linux -e ld-musl "$BIN_DIR/$bin"; then fail "$bin is not statically linked"; fi
    done
    timing "host build of the static binaries" "$(since "$start")"
}

build_images() {
    local start=$EPOCHREALTIME
    "$ROOT/docker/base-image.sh" || fail "docker/base-image.sh failed"
    timing "Debian base images (debootstrap once, then reused)" "$(since "$start")"

    # The root Dockerfile, fed with the host-built binaries through a small build context.
    start=$EPOCHREALTIME
    local ctx=$TMP/context
    mkdir -p "$ctx"
    cp "$ROOT/Dockerfile" "$BIN_DIR/rancher-boot" "$BIN_DIR/fake-rancher-metadata" "$ctx/"
    local target image
    for target in rancher-boot fake-rancher-metadata; do
        image=$RANCHER_BOOT_IMAGE
        [[ $target == fake-rancher-metadata ]] && image=$FAKE_IMAGE
        docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PREBUILT_DIR=. \
            --target "$target" -t "$image" "$ctx" >/dev/null 2>"$TMP/build.log" \
            || { cat "$TMP/build.log" >&2; fail "docker build --target $target failed"; }
    done
    timing "root Dockerfile: rancher-boot and fake-rancher-metadata images" "$(since "$start")"

    start=$EPOCHREALTIME
    docker build -q --build-arg RANCHER_BOOT_IMAGE="$RANCHER_BOOT_IMAGE" -t "$HELLO_IMAGE" \
        "$ROOT/docker/hello" >/dev/null 2>"$TMP/build.log" \
        || { cat "$TMP/build.log" >&2; fail "docker build docker/hello failed"; }
    timing "hello release image (mix release in Debian's elixir)" "$(since "$start")"
}

# --- the cluster --------------------------------------------------------------------------------

# metadata NAME ALIAS... -- ARGS: a fake-rancher-metadata container on the network.
start_metadata() {
    local name=$1; shift
    local aliases=()
    while [[ $1 != -- ]]; do aliases+=(--network-alias "$1"); shift; done
    shift
    docker run -d --name "$RUN-$name" --label "$LABEL" --network "$NET" "${aliases[@]}" \
        "$FAKE_IMAGE" --listen 0.0.0.0:80 "$@" >/dev/null || fail "cannot start $name"
}

# start_node NAME [DOCKER RUN ARGS...]: a hello container, a replica of the service `hello`
# (the network alias is what Docker's DNS resolves the service name to).
start_node() {
    local name=$1; shift
    docker run -d --name "$RUN-$name" --label "$LABEL" --network "$NET" --network-alias hello \
        --stop-timeout 10 \
        -v "$TMP/cookie:$SECRET_IN_CONTAINER:ro" -e RANCHER_BOOT_COOKIE_FILE="$SECRET_IN_CONTAINER" \
        -e RANCHER_METADATA_URL=http://rancher-metadata.rancher.internal/2016-07-29 \
        "$@" "$HELLO_IMAGE" >/dev/null || fail "cannot start $name"
    # The address is assigned when the container starts, which `docker run -d` waits for.
    IPS[$name]=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$RUN-$name")
    [[ -n ${IPS[$name]} ]] || fail "$name has no address on $NET"
}

declare -A IPS=()
ip_of() { printf '%s' "${IPS[$1]}"; }
self_of() { docker exec "$RUN-$1" cat /tmp/hello/self 2>/dev/null; }
nodes_of() { docker exec "$RUN-$1" cat /tmp/hello/nodes 2>/dev/null; }

# The node names that `node` should list: hello@IP of every other given node, sorted.
expected_peers() {
    local me=$1 n; shift
    for n in "$@"; do [[ $n == "$me" ]] || printf 'hello@%s\n' "$(ip_of "$n")"; done | sort
}

# connected NODE...: each given node lists exactly the others (nothing more, nothing less).
connected() {
    local n
    for n in "$@"; do
        [[ "$(nodes_of "$n")" == "$(expected_peers "$n" "$@")" ]] || return 1
    done
}

# named_by_ip NODE...: each node's own name is hello@<its container IP>.
named_by_ip() {
    local n
    for n in "$@"; do
        [[ "$(self_of "$n")" == "hello@$(ip_of "$n")" ]] || return 1
    done
}

# rpc NODE EXPR: the release's rpc through rancher-boot's passthrough, as an operator would.
rpc() { docker exec "$RUN-$1" rancher-boot rpc "$2"; }

# stop_node NODE: docker stop, timed; the node must end within STOP_DEADLINE with code 0. Had
# SIGTERM not reached the VM (a shell as PID 1, say), docker would kill it after 10 s: 137.
stop_node() {
    local n=$1 start=$EPOCHREALTIME took code
    docker stop -t 10 "$RUN-$n" >/dev/null
    took=$(since "$start")
    code=$(docker inspect -f '{{.State.ExitCode}}' "$RUN-$n")
    [[ $code == 0 ]] || fail "$n exited with code $code after docker stop"
    awk -v t="$took" -v d="$STOP_DEADLINE" 'BEGIN { exit !(t < d) }' \
        || fail "$n took $took s to stop (deadline $STOP_DEADLINE s)"
    timing "docker stop $n: exit 0 in" "$took"
}

main() {
    ensure_host_tools
    build_binaries
    build_images

    docker network create --internal --label "$LABEL" "$NET" >/dev/null
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie"
    chmod 0444 "$TMP/cookie"
    COOKIE=$(cat "$TMP/cookie")

    # --resolve: self/service lists what `hello` resolves to (the running replicas), like
    # Rancher's metadata lists the service's live containers.
    start_metadata metadata rancher-metadata rancher-metadata.rancher.internal -- \
        --mirror --service hello --stack demo --resolve
    # A second metadata service that answers 404 to each caller for its first 3 s.
    start_metadata metadata-slow rancher-metadata-slow -- \
        --mirror --service hello --stack demo --not-found-for 3s

    # 1. Three nodes, the env-only way (mix release reads RELEASE_NODE/RELEASE_DISTRIBUTION).
    local start=$EPOCHREALTIME took
    start_node n1; start_node n2; start_node n3
    took=$(wait_until "$CLUSTER_DEADLINE" "three nodes each listing the other two" connected n1 n2 n3)
    timing "3 nodes up, each listing the other two" "$(since "$start")"
    named_by_ip n1 n2 n3 || fail "a node is not named hello@<its container IP>: $(self_of n1) $(self_of n2) $(self_of n3)"
    log "names: $(self_of n1), $(self_of n2), $(self_of n3)"
    [[ $(docker exec "$RUN-n1" cat /proc/1/comm) == beam.smp ]] \
        || fail "PID 1 of n1 is not the Erlang VM: rancher-boot did not exec"

    # 2. Scale to five; the two new nodes are named the vm.args way.
    start=$EPOCHREALTIME
    start_node n4 -e RANCHER_BOOT_VM_ARGS=/opt/app/rancher/vm.args
    start_node n5 -e RANCHER_BOOT_VM_ARGS=/opt/app/rancher/vm.args
    took=$(wait_until "$CLUSTER_DEADLINE" "five nodes all connected" connected n1 n2 n3 n4 n5)
    timing "scaled to 5, all connected" "$(since "$start")"
    named_by_ip n4 n5 || fail "a vm.args node is not named hello@<its container IP>"

    # rancher-boot's own peer discovery, both ways, agrees with the cluster.
    start=$EPOCHREALTIME
    local peers way
    for way in dns metadata; do
        peers=$(docker exec "$RUN-n1" rancher-boot --peers "$way" peers 2>"$TMP/exec.err" | sort) \
            || { cat "$TMP/exec.err" >&2; fail "rancher-boot --peers $way peers failed in n1"; }
        [[ $peers == "$(expected_peers n1 n1 n2 n3 n4 n5)" ]] \
            || fail "rancher-boot --peers $way peers in n1 printed: $(echo $peers)"
    done
    timing "rancher-boot peers in n1, by DNS and by metadata" "$(since "$start")"

    # 3. Passthrough: rpc reaches the running node under the same name and cookie.
    start=$EPOCHREALTIME
    local answer
    answer=$(rpc n1 'IO.puts("#{node()} #{Hello.Poller.naming()}")') || fail "rpc to n1 failed"
    [[ $answer == "hello@$(ip_of n1) env" ]] || fail "rpc to n1 answered '$answer'"
    answer=$(rpc n4 'IO.puts("#{node()} #{Hello.Poller.naming()}")') || fail "rpc to n4 failed"
    [[ $answer == "hello@$(ip_of n4) vm_args" ]] || fail "rpc to n4 answered '$answer' (vm.args naming)"
    # (The cookie is compared here, never printed nor put on a command line.)
    answer=$(rpc n2 'IO.puts(Node.get_cookie())' 2>/dev/null) || fail "rpc to n2 failed"
    [[ $answer == "$COOKIE" ]] || fail "n2 does not run with the cookie from the secret file"
    docker exec "$RUN-n1" test ! -e /opt/app/releases/COOKIE || fail "the image holds a baked-in cookie"
    timing "passthrough rpc x3 (name, vm.args naming, cookie)" "$(since "$start")"

    # 4. docker stop ends a node within 5 s with code 0; the others drop it.
    stop_node n2
    start=$EPOCHREALTIME
    took=$(wait_until "$CLUSTER_DEADLINE" "the others dropping n2" connected n1 n3 n4 n5)
    timing "n2 dropped by the other four" "$took"

    # 5. A node whose metadata answers 404 for its first 3 s waits, then joins.
    start=$EPOCHREALTIME
    start_node n6 -e RANCHER_METADATA_URL=http://rancher-metadata-slow/2016-07-29
    took=$(wait_until $((CLUSTER_DEADLINE + 3)) "the late node n6 joining" connected n1 n3 n4 n5 n6)
    timing "n6 (metadata 404 for its first 3 s) joined after" "$took"
    named_by_ip n6 || fail "n6 is not named hello@<its container IP>"
    local ip6 slow_log
    ip6=$(ip_of n6)
    slow_log=$(docker logs "$RUN-metadata-slow" 2>&1)
    grep -q "^fake-rancher-metadata: $ip6 GET .* 404\$" <<<"$slow_log" || fail "n6 never got a 404 from the slow metadata"
    grep -q "^fake-rancher-metadata: $ip6 GET .* 200\$" <<<"$slow_log" || fail "n6 never got its identity"
    awk -v t="$took" 'BEGIN { exit !(t >= 3) }' || fail "n6 joined after $took s, before its metadata answered"
    log "n6: $(grep -c "^fake-rancher-metadata: $ip6 GET .* 404\$" <<<"$slow_log") answers 404 from metadata, $(docker logs "$RUN-n6" 2>&1 | grep -ci '^rancher-boot: warn') retry warnings from rancher-boot, then its identity"

    # 6. Every node stops within 5 s with code 0.
    local n
    for n in n1 n3 n4 n5 n6; do stop_node "$n"; done

    printf '\n[e2e] PASSED in %s s\n' "$(since "$T0")" >&2
    printf '  %s\n' "${TIMINGS[@]}" >&2
    printf '  images:\n' >&2
    local image
    for image in "$RANCHER_BOOT_IMAGE" "$FAKE_IMAGE" "$HELLO_IMAGE" "$BASE_IMAGE" rancher-boot/debian-elixir:bookworm; do
        docker image inspect -f '{{.Size}}' "$image" \
            | awk -v i="$image" '{ printf "    %-45s %9.1f MB\n", i, $1 / 1e6 }' >&2
    done
}

main "$@"

# Shared by docker/e2e-{swarm,compose,kubernetes,fly,nomad}.sh (sourced, not run): output,
# polling with deadlines, the host tools, the static binaries and the images, and the checks that
# read a running `hello` node. A script that sources it sets RUN (its name for this run), LABEL and
# TMP first, and defines dump_diagnostics and cleanup (or, when all its containers carry $LABEL on
# one network $NET, uses dump_labelled_logs and cleanup_labelled, below).
#
# Images: E2E_IMAGES (default `rancher-boot`) names them: $E2E_IMAGES:latest (the FROM scratch
# rancher-boot image), $E2E_IMAGES/hello:latest (the example release); set it to build beside
# the default tags instead of over them.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-unknown-linux-musl
E2E_IMAGES=${E2E_IMAGES:-rancher-boot}
RANCHER_BOOT_IMAGE=$E2E_IMAGES:latest
HELLO_IMAGE=$E2E_IMAGES/hello:latest
BASE_IMAGE=rancher-boot/debian:bookworm
T0=$EPOCHREALTIME
export LC_ALL=C # sort as Elixir's Enum.sort does: byte by byte
declare -a TIMINGS=()

# --- output -------------------------------------------------------------------------------

since() { # elapsed seconds since $1 (an $EPOCHREALTIME), with millisecond precision
    local start=${1/./} now=${EPOCHREALTIME/./}
    local us=$((now - start))
    printf '%d.%03d' $((us / 1000000)) $((us % 1000000 / 1000))
}
log() { printf '[%s %7ss] %s\n' "$RUN" "$(since "$T0")" "$*" >&2; }
timing() { TIMINGS+=("$(printf '%-62s %s' "$1" "$2")"); log "$1: $2"; }

fail() {
    printf '\n[%s] FAILED: %s\n' "$RUN" "$*" >&2
    dump_diagnostics
    exit 1
}

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every 100 ms until it succeeds; fail
# at the deadline (counted from $WAIT_FROM, an $EPOCHREALTIME, when set: the command that the
# deadline is about, e.g. `docker service scale`). Prints the time it took on stdout.
wait_until() {
    local deadline=$1 what=$2 start=${WAIT_FROM:-$EPOCHREALTIME}
    shift 2
    local limit=$((${start/./} + deadline * 1000000))
    until "$@"; do
        ((${EPOCHREALTIME/./} < limit)) || fail "$what: not within $deadline s"
        sleep 0.1
    done
    since "$start"
}

# --- prerequisites and images -------------------------------------------------------------

ensure_host_tools() {
    command -v docker >/dev/null || fail "docker is not installed"
    docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable"
    command -v cargo >/dev/null || fail "cargo is not installed (install a Rust toolchain with rustup)"
    command -v nsenter >/dev/null || fail "nsenter is not installed (util-linux)"
    command -v ip >/dev/null || fail "ip is not installed (iproute2)"
    local missing=() tool
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v musl-gcc >/dev/null || missing+=(musl-tools)
    for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
        log "rustup target add $TARGET"
        rustup target add "$TARGET" >/dev/null
    fi
}

# The static rancher-boot, the Debian base images, the rancher-boot image and the example
# release, each step reusing what a previous run (docker/e2e.sh's too) left.
build_images() {
    local start=$EPOCHREALTIME target_dir bin_dir
    log "cargo build --release --target $TARGET"
    (cd "$ROOT" && cargo build --release --locked --target "$TARGET" --bins --quiet) \
        || fail "cargo build failed"
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --offline 2>/dev/null \
        | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
    bin_dir=${target_dir:-$ROOT/target}/$TARGET/release
    local bin
    for bin in rancher-boot fake-rancher-metadata; do
        [[ -x $bin_dir/$bin ]] || fail "$bin_dir/$bin was not built"
        if grep -q -e ld-linux -e ld-musl "$bin_dir/$bin"; then fail "$bin is not statically linked"; fi
    done
    timing "host build of the static binaries" "$(since "$start") s"

    start=$EPOCHREALTIME
    "$ROOT/docker/base-image.sh" >&2 || fail "docker/base-image.sh failed"
    timing "Debian base images (debootstrap once, then reused)" "$(since "$start") s"

    start=$EPOCHREALTIME
    local ctx=$TMP/context
    mkdir -p "$ctx"
    cp "$ROOT/Dockerfile" "$bin_dir/rancher-boot" "$bin_dir/fake-rancher-metadata" "$ctx/"
    docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PREBUILT_DIR=. \
        --target rancher-boot -t "$RANCHER_BOOT_IMAGE" "$ctx" >/dev/null 2>"$TMP/build.log" \
        || { cat "$TMP/build.log" >&2; fail "docker build --target rancher-boot failed"; }
    docker build -q --build-arg RANCHER_BOOT_IMAGE="$RANCHER_BOOT_IMAGE" -t "$HELLO_IMAGE" \
        "$ROOT/docker/hello" >/dev/null 2>"$TMP/build.log" \
        || { cat "$TMP/build.log" >&2; fail "docker build docker/hello failed"; }
    timing "rancher-boot and hello release images" "$(since "$start") s"
}

# --- a swarm of the script's own -------------------------------------------------------------

SWARM_INITED=
GWBRIDGE_BEFORE=

# swarm_init: a single-node swarm, on an engine that is in none (checked here, just before: another
# run's swarm is never touched). It counts as ours, for swarm_leave, only once `init` succeeded.
# Loopback as the advertised address: a single node needs none that other hosts reach.
swarm_init() {
    [[ $(docker info -f '{{.Swarm.LocalNodeState}}') == inactive ]] \
        || fail "this Docker engine is already part of a swarm: not touching it (docker swarm leave --force, if it is yours)"
    docker network inspect docker_gwbridge >/dev/null 2>&1 && GWBRIDGE_BEFORE=1
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "docker swarm init failed"
    SWARM_INITED=1
}

# swarm_leave: leaves the swarm swarm_init made, and the docker_gwbridge it made (a machine that
# had none before has none after); nothing when it made none.
swarm_leave() {
    [[ -n $SWARM_INITED ]] || return 0
    docker swarm leave --force >/dev/null 2>&1 || log "warning: docker swarm leave --force failed"
    [[ -n $GWBRIDGE_BEFORE ]] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
}

# --- reading a node -------------------------------------------------------------------------

# node_view CONTAINER: its own name, then `--`, then the nodes it is connected to (the hello
# poller's status files); fails while the node has not written them yet.
node_view() { docker exec "$1" sh -c 'cat /tmp/hello/self && echo -- && cat /tmp/hello/nodes' 2>/dev/null; }

# exported CONTAINER VARIABLE: the value rancher-boot exported to the VM: the environment of
# beam.smp (PID 1 after the exec; rancher-boot's child with --init).
exported() {
    docker exec "$1" sh -c 'for p in /proc/[0-9]*; do
            [ "$(cat "$p/comm" 2>/dev/null)" = beam.smp ] && exec cat "$p/environ"
        done; exec cat /proc/1/environ' 2>/dev/null | tr '\0' '\n' | sed -n "s/^$2=//p"
}

# boot_seconds CONTAINER: from the container's start to the hello application's start (the
# entrypoint, the release's start script and the VM's own boot), as `S.mmm`.
boot_seconds() {
    local started app_ms
    started=$(docker inspect -f '{{.State.StartedAt}}' "$1") || return 1
    app_ms=$(docker exec "$1" cat /tmp/hello/started_ms 2>/dev/null) || return 1
    local start_ms=$(($(date -d "$started" +%s%N) / 1000000))
    local ms=$((app_ms - start_ms))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# max_of NUMBER...: the largest, as given.
max_of() { printf '%s\n' "$@" | sort -g | tail -1; }

# meshed NAME=IP...: each node NAME (a container) is hello@IP and lists exactly the others.
meshed() {
    local pair name ip want view
    for pair in "$@"; do
        name=${pair%%=*} ip=${pair#*=}
        want=$(printf 'hello@%s\n--\n' "$ip"
            for other in "$@"; do [[ $other == "$pair" ]] || printf 'hello@%s\n' "${other#*=}"; done | sort)
        view=$(node_view "$name") || return 1
        [[ $view == "$want" ]] || return 1
    done
}

# meshed_as NAME=NODE...: container NAME runs node NODE and lists exactly the other nodes (for
# nodes not named hello@<IP>: host names, IPv6 text).
meshed_as() {
    local pair other want view
    for pair in "$@"; do
        want=$(printf '%s\n--\n' "${pair#*=}"
            for other in "$@"; do [[ $other == "$pair" ]] || printf '%s\n' "${other#*=}"; done | sort)
        view=$(node_view "${pair%%=*}") || return 1
        [[ $view == "$want" ]] || return 1
    done
}

# build_dnsmasq: the dnsmasq image ($DNSMASQ_IMAGE) of the platform stand-ins (docker/dnsmasq).
DNSMASQ_IMAGE=$E2E_IMAGES/dnsmasq:latest
build_dnsmasq() {
    local start=$EPOCHREALTIME
    docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$DNSMASQ_IMAGE" "$ROOT/docker/dnsmasq" \
        >/dev/null 2>"$TMP/build.log" || { cat "$TMP/build.log" >&2; fail "docker build docker/dnsmasq failed"; }
    timing "dnsmasq image" "$(since "$start") s"
}

# For a script whose containers all carry $LABEL, on one network $NET: remove them; show their
# last log lines (for dump_diagnostics); and the EXIT trap that removes them, the network and $TMP
# (E2E_KEEP=1 keeps them) and exits with the script's status.
remove_labelled() {
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL" 2>/dev/null || true)
    [[ -z $ids ]] || docker rm -f $ids >/dev/null 2>&1 || true
}

# dump_labelled_logs [FILTER]: every container that `docker ps --filter FILTER` lists (default:
# label=$LABEL), its state and last 40 log lines.
dump_labelled_logs() {
    local c
    for c in $(docker ps -aq --filter "${1:-label=$LABEL}" 2>/dev/null); do
        printf '\n----- %s -----\n' "$(docker inspect -f '{{.Name}} {{.State.Status}} exit={{.State.ExitCode}}' "$c")" >&2
        docker logs --tail 40 "$c" 2>&1 | sed 's/^/  | /' >&2 || true
    done
}

cleanup_labelled() {
    local status=$?
    if [[ ${E2E_KEEP:-} == 1 ]]; then
        log "E2E_KEEP=1: keeping the containers of $LABEL, network $NET and $TMP"
        return
    fi
    remove_labelled
    docker network rm "$NET" >/dev/null 2>&1 || true
    rm -rf "$TMP"
    exit $status
}

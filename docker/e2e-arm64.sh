#!/usr/bin/env bash
# End-to-end on arm64, emulated: the linux/arm64 images of the root Dockerfile, and a real arm64
# Erlang VM started by the arm64 rancher-boot, reached from an amd64 node.
#
#   1. the rancher-boot image for linux/arm64 (root Dockerfile, classic builder, the host-built
#      aarch64 binaries) says arm64 and boots: `print-env` in it names the node;
#   2. an arm64 Debian root with erlang-nox (docker/base-image.sh --arch arm64, debootstrap's
#      second stage under qemu; built once and reused by tag) plus the arm64 rancher-boot as
#      ENTRYPOINT: rancher-boot learns the node's identity from fake-rancher-metadata (the
#      linux/arm64 image of the root Dockerfile too), renders vm.args, exports the cookie from a
#      secret file, and execs `erl`: PID 1 is then the arm64 Erlang VM, named erl@<container IP>;
#   3. an amd64 Erlang node on the same Docker network, with the same cookie, gets `pong` from
#      net_adm:ping and, over rpc, the arm64 node's name, architecture and cookie check;
#   4. `docker exec C rancher-boot print-env` derives the same name again; `docker stop` ends the
#      arm64 node with exit code 0 (SIGTERM reached the VM).
#
# Emulation is slow: nothing here is timed against a deadline tighter than the emulation can
# keep; the timings it prints say how long emulation took, not how fast rancher-boot is.
# Debian's OTP 25 JIT segfaults under qemu-user 7.2 (dual-mapped JIT code; erlang/docker-erlang-otp#400):
# the arm64 VM runs with `+JPperf true` (single-mapped), a flag for emulation only.
#
# Usage: docker/e2e-arm64.sh       (as root on an x86_64 Debian with Docker and rustup)
# The qemu-aarch64 binfmt handler is registered only for the run when it is missing
# (docker/with-qemu-aarch64.sh). E2E_KEEP=1 keeps the containers and the network.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ ${RB_E2E_ARM64_WRAPPED:-} != 1 ]]; then
    RB_E2E_ARM64_WRAPPED=1 exec "$ROOT/docker/with-qemu-aarch64.sh" "${BASH_SOURCE[0]}" "$@"
fi

NAME=rb-arm64
RUN=$NAME-$$
NET=$RUN
LABEL=rancher-boot-e2e-arm64=$RUN
TARGET=aarch64-unknown-linux-musl
RANCHER_BOOT_IMAGE=$NAME/rancher-boot:latest
FAKE_IMAGE=$NAME/fake-rancher-metadata:latest
ERLANG_IMAGE=$NAME/erlang:latest
ARM64_BASE=rancher-boot/debian-erlang:bookworm-arm64 # docker/base-image.sh --arch arm64
AMD64_ERLANG=rancher-boot/debian-elixir:bookworm     # docker/base-image.sh (erlang 25, amd64)
SECRET=/run/secrets/erlang_cookie
UP_DEADLINE=180  # seconds: an emulated VM's start, generous
STOP_DEADLINE=60 # seconds: docker stop's grace period under emulation

T0=$EPOCHREALTIME
TMP=$(mktemp -d -t rancher-boot-e2e-arm64.XXXXXX)
declare -a TIMINGS=()

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; } # seconds since $1
log() { printf '[e2e-arm64 %7ss] %s\n' "$(since "$T0")" "$*" >&2; }
timing() { TIMINGS+=("$(printf '%-62s %8ss' "$1" "$2")"); log "$1: $2 s"; }

# fail MESSAGE: the containers of this run with their last log lines, then exit 1.
fail() {
    printf '\n[e2e-arm64] FAILED: %s\n' "$*" >&2
    docker ps -aq --filter "label=$LABEL" 2>/dev/null | while read -r c; do
        docker inspect -f '----- {{.Name}} {{.State.Status}} exit={{.State.ExitCode}}' "$c" >&2
        docker logs --tail 60 "$c" 2>&1 | sed 's/^/  | /' >&2
    done
    exit 1
}

# Everything this run starts carries LABEL: its containers and its network go by it.
cleanup() {
    local status=$?
    if [[ ${E2E_KEEP:-} == 1 ]]; then
        log "E2E_KEEP=1: keeping what has the label $LABEL, and $TMP"
        exit "$status"
    fi
    docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter "label=$LABEL" | xargs -r docker network rm >/dev/null 2>&1 || true
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# build_arm64 TAG CONTEXT [ARGS...]: the classic builder for linux/arm64 (no buildx here).
build_arm64() {
    local tag=$1 ctx=$2
    shift 2
    DOCKER_BUILDKIT=0 docker build -q --platform linux/arm64 --build-arg TARGETARCH=arm64 "$@" \
        -t "$tag" "$ctx" >/dev/null 2>"$TMP/build.log" \
        || { cat "$TMP/build.log" >&2; fail "docker build of $tag failed"; }
    [[ $(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$tag") == linux/arm64 ]] \
        || fail "$tag is not a linux/arm64 image"
}

build() {
    local start=$EPOCHREALTIME
    command -v cargo >/dev/null || fail "cargo is not installed (install a Rust toolchain with rustup)"
    if command -v rustup >/dev/null; then rustup target add "$TARGET" >/dev/null 2>&1 || true; fi
    (cd "$ROOT" && cargo build --release --locked --target "$TARGET" --bins --quiet) || fail "cargo build failed"
    local bin_dir=$ROOT/target/$TARGET/release
    timing "host build of the static aarch64 binaries" "$(since "$start")"

    start=$EPOCHREALTIME
    "$ROOT/docker/base-image.sh" || fail "docker/base-image.sh failed"
    "$ROOT/docker/base-image.sh" --arch arm64 || fail "docker/base-image.sh --arch arm64 failed"
    timing "Debian images, amd64 and arm64 (debootstrap once, then reused)" "$(since "$start")"

    # 1. The root Dockerfile for linux/arm64, fed with the host-built aarch64 binaries. The
    # classic builder cannot copy between platforms, so its build stage is the arm64 image
    # (cp and a few checks, under qemu).
    start=$EPOCHREALTIME
    local ctx=$TMP/context
    mkdir -p "$ctx"
    cp "$ROOT/Dockerfile" "$bin_dir/rancher-boot" "$bin_dir/fake-rancher-metadata" "$ctx/"
    build_arm64 "$RANCHER_BOOT_IMAGE" "$ctx" --build-arg BASE_IMAGE="$ARM64_BASE" \
        --build-arg PREBUILT_DIR=. --target rancher-boot
    build_arm64 "$FAKE_IMAGE" "$ctx" --build-arg BASE_IMAGE="$ARM64_BASE" \
        --build-arg PREBUILT_DIR=. --target fake-rancher-metadata
    timing "root Dockerfile for linux/arm64: both images" "$(since "$start")"

    # The arm64 Erlang image: Debian's erlang-nox, rancher-boot as ENTRYPOINT, the way a release
    # image takes it (COPY --from the rancher-boot image).
    start=$EPOCHREALTIME
    mkdir -p "$TMP/erlang"
    cat >"$TMP/erlang/vm.args.src" <<'EOF'
-name ${NODE_NAME}
-setcookie ${RELEASE_COOKIE}
EOF
    cat >"$TMP/erlang/Dockerfile" <<EOF
FROM $RANCHER_BOOT_IMAGE AS rancher-boot
FROM $ARM64_BASE
COPY --from=rancher-boot /rancher-boot /usr/local/bin/rancher-boot
COPY vm.args.src /etc/erl/vm.args.src
ENV RANCHER_BOOT_VM_ARGS=/etc/erl/vm.args.src RANCHER_BOOT_NODE_BASENAME=erl
# +JPperf true: single-mapped JIT code, for qemu-user only (its dual-mapped JIT segfaults there).
ENTRYPOINT ["rancher-boot", "--", "erl", "+JPperf", "true", "-noshell", "-args_file", "/tmp/rancher-boot/vm.args"]
EOF
    build_arm64 "$ERLANG_IMAGE" "$TMP/erlang"
    timing "arm64 Erlang image (erlang-nox + rancher-boot)" "$(since "$start")"
}

main() {
    command -v docker >/dev/null || fail "docker is not installed"
    docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable"
    build

    # 1. The FROM scratch image boots (no network at all: --source local with an explicit IP).
    local start=$EPOCHREALTIME out
    out=$(docker run --rm --platform linux/arm64 --network none --label "$LABEL" "$RANCHER_BOOT_IMAGE" \
        --source local --ip 192.0.2.10 --service hello --peers none --node-basename hello print-env 2>&1) \
        || fail "print-env in $RANCHER_BOOT_IMAGE: $out"
    grep -qx "export NODE_NAME='hello@192.0.2.10'" <<<"$out" || fail "print-env in $RANCHER_BOOT_IMAGE printed: $out"
    timing "rancher-boot image (linux/arm64): print-env names the node" "$(since "$start")"

    docker network create --internal --label "$LABEL" "$NET" >/dev/null
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$TMP/cookie"
    chmod 0444 "$TMP/cookie"

    # 2. fake-rancher-metadata (arm64 too) as Rancher's metadata host, and the arm64 node.
    docker run -d --platform linux/arm64 --name "$RUN-metadata" --label "$LABEL" --network "$NET" \
        --network-alias rancher-metadata --network-alias rancher-metadata.rancher.internal \
        "$FAKE_IMAGE" --listen 0.0.0.0:80 --mirror --service erl --stack demo >/dev/null \
        || fail "cannot start fake-rancher-metadata"
    start=$EPOCHREALTIME
    docker run -d --platform linux/arm64 --name "$RUN-arm" --label "$LABEL" --network "$NET" \
        --stop-timeout "$STOP_DEADLINE" -v "$TMP/cookie:$SECRET:ro" -e RANCHER_BOOT_COOKIE_FILE="$SECRET" \
        -e RANCHER_METADATA_URL=http://rancher-metadata.rancher.internal/2016-07-29 \
        "$ERLANG_IMAGE" >/dev/null || fail "cannot start the arm64 node"
    local ip node
    ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$RUN-arm")
    [[ -n $ip ]] || fail "the arm64 node has no address on $NET"
    node=erl@$ip

    # 3. An amd64 node with the same cookie pings it until pong (the emulated VM takes a while to
    # register with epmd), then asks it, over rpc, what it is.
    local probe
    probe=$(cat <<EOF
T = '$node',
Ping = fun P(0) -> pang; P(N) -> case net_adm:ping(T) of pong -> pong; pang -> timer:sleep(500), P(N - 1) end end,
R = Ping($((UP_DEADLINE * 2))),
io:format("ping ~p~n", [R]),
R =:= pong andalso io:format("node ~s~narch ~s~nmachine ~s~n", [rpc:call(T, erlang, node, []),
    rpc:call(T, erlang, system_info, [system_architecture]), rpc:call(T, os, cmd, ["uname -m"])]),
halt().
EOF
)
    out=$(docker run --rm --name "$RUN-probe" --label "$LABEL" --network "$NET" -v "$TMP/cookie:$SECRET:ro" \
        --entrypoint sh "$AMD64_ERLANG" -c \
        'exec erl -noshell -name "probe@$(hostname -i)" -setcookie "$(cat '"$SECRET"')" -eval "$1"' sh "$probe" 2>&1) \
        || fail "the amd64 probe failed: $out"
    log "amd64 probe said: $(tr '\n' ' ' <<<"$out")"
    grep -qx "ping pong" <<<"$out" || fail "net_adm:ping from amd64 to $node did not answer pong"
    timing "arm64 node up, pong from the amd64 node" "$(since "$start")"
    grep -qx "node $node" <<<"$out" || fail "the arm64 node is not named $node"
    grep -q '^arch aarch64-' <<<"$out" || fail "the node that answered is not an aarch64 VM"
    grep -qx 'machine aarch64' <<<"$out" || fail "the node that answered does not run on aarch64"
    grep -q "^fake-rancher-metadata: $ip GET .* 200\$" <<<"$(docker logs "$RUN-metadata" 2>&1)" \
        || fail "rancher-boot on arm64 never asked the metadata service"
    local comm
    comm=$(docker exec "$RUN-arm" cat /proc/1/cmdline | tr '\0' ' ')
    [[ $comm == *beam.smp* ]] || fail "PID 1 of the arm64 node is not the Erlang VM: $comm"
    docker logs "$RUN-arm" 2>&1 | grep -q "info: node $node" \
        || fail "rancher-boot's info line does not name $node: $(docker logs "$RUN-arm" 2>&1 | tail -n 5)"

    # docker exec does not see the entrypoint's exports: the arm64 rancher-boot derives the same
    # identity again (metadata answers by the caller's address).
    out=$(docker exec "$RUN-arm" rancher-boot print-env 2>&1) || fail "docker exec rancher-boot print-env: $out"
    grep -qx "export NODE_NAME='$node'" <<<"$out" || fail "docker exec rancher-boot print-env printed: $out"

    # 4. docker stop: SIGTERM reaches the VM (PID 1), which stops with code 0.
    start=$EPOCHREALTIME
    docker stop "$RUN-arm" >/dev/null
    local code
    code=$(docker inspect -f '{{.State.ExitCode}}' "$RUN-arm")
    [[ $code == 0 ]] || fail "the arm64 node exited with code $code after docker stop"
    timing "docker stop of the arm64 node: exit 0" "$(since "$start")"

    printf '\n[e2e-arm64] PASSED in %s s\n' "$(since "$T0")" >&2
    printf '  %s\n' "${TIMINGS[@]}" >&2
    local image
    for image in "$RANCHER_BOOT_IMAGE" "$FAKE_IMAGE" "$ERLANG_IMAGE" "$ARM64_BASE"; do
        docker image inspect -f '{{.Architecture}} {{.Size}}' "$image" \
            | awk -v i="$image" '{ printf "    %-45s %-6s %9.1f MB\n", i, $1, $2 / 1e6 }' >&2
    done
}

main "$@"

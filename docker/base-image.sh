#!/usr/bin/env bash
# Builds the local Debian bookworm base images that the project's Dockerfiles start FROM,
# without any container registry: debootstrap (variant minbase) from this machine's own apt
# sources, then `docker import`. Each tag is built once and reused while it exists.
#
#   rancher-boot/debian:bookworm         minbase: what a mix release with bundled ERTS needs
#                                        (libc, libstdc++, libtinfo, zlib are all in minbase)
#   rancher-boot/debian-elixir:bookworm  minbase + Debian's elixir (1.14) and erlang (25),
#                                        for building the example release
# and with --arch arm64, only
#   rancher-boot/debian-erlang:bookworm-arm64  arm64 minbase + Debian's erlang-nox (25), a
#                                        linux/arm64 image for docker/e2e-arm64.sh; the second
#                                        stage runs under qemu (docker/with-qemu-aarch64.sh),
#                                        about 3.5 minutes on 2 cores
#
# Usage: docker/base-image.sh [--force] [--arch arm64]   (run as root; installs debootstrap if missing)
# Environment: DEBIAN_MIRROR overrides the mirror read from /etc/apt/sources*;
#              BASE_TAG / ELIXIR_TAG / ARM64_TAG override the tags.
set -euo pipefail

BASE_TAG=${BASE_TAG:-rancher-boot/debian:bookworm}
ELIXIR_TAG=${ELIXIR_TAG:-rancher-boot/debian-elixir:bookworm}
ARM64_TAG=${ARM64_TAG:-rancher-boot/debian-erlang:bookworm-arm64}
SUITE=bookworm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
force=0 arch=
while (($#)); do
    case $1 in
        --force) force=1 ;;
        --arch) arch=${2:-}; [[ $arch == arm64 ]] || { echo "base-image: --arch takes arm64" >&2; exit 64; }; shift ;;
        *) echo "usage: docker/base-image.sh [--force] [--arch arm64]" >&2; exit 64 ;;
    esac
    shift
done

log() { printf 'base-image: %s\n' "$*" >&2; }
die() { printf 'base-image: error: %s\n' "$*" >&2; exit 1; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The mirror of this machine's bookworm sources: deb822 files first, then the one-line format.
find_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then printf '%s\n' "$DEBIAN_MIRROR"; return; fi
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        # A stanza whose Suites hold "bookworm" (not only -security/-updates) and whose URI is Debian's.
        uri=$(awk -v suite="$SUITE" '
            BEGIN { RS=""; FS="\n" }
            {
                uris=""; ok=0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uris=u[1] }
                    if ($i ~ /^Suites:/) { n=split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok=1 }
                }
                if (ok && uris != "") { print uris; exit }
            }' "$f")
        if [[ -n $uri ]]; then printf '%s\n' "$uri"; return; fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        uri=$(awk -v suite="$SUITE" '$1 == "deb" {
                  i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                  if ($(i + 1) == suite) { print $i; exit } }' "$f")
        if [[ -n $uri ]]; then printf '%s\n' "$uri"; return; fi
    done
    die "no '$SUITE' entry in /etc/apt/sources.list*; set DEBIAN_MIRROR"
}

ensure_tools() {
    command -v docker >/dev/null || die "docker is not installed"
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    [[ -r /usr/share/keyrings/debian-archive-keyring.gpg ]] || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debian-archive-keyring >/dev/null
    }
}

# bootstrap TAG INCLUDE [ARCH]: one debootstrap into a scratch directory, trimmed, imported as
# TAG. A foreign ARCH (arm64) runs debootstrap's second stage under qemu.
bootstrap() {
    local tag=$1 include=$2 arch=${3:-} root
    local run=() arch_opt=() platform=()
    if [[ -n $arch ]]; then
        run=("$HERE/with-qemu-aarch64.sh") arch_opt=(--arch="$arch") platform=(--platform "linux/$arch")
    fi
    root=$(mktemp -d /tmp/rancher-boot-rootfs.XXXXXX)
    # Unmount nothing (debootstrap cleans its own mounts); remove the tree whatever happens.
    trap 'rm -rf "$root" "$root.ctx"' RETURN
    log "debootstrap $SUITE (${arch:+$arch }minbase${include:+, $include}) from $MIRROR"
    local start=$SECONDS
    "${run[@]}" debootstrap "${arch_opt[@]}" --variant=minbase ${include:+--include="$include"} \
        --cache-dir="$CACHE" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || {
        tail -n 30 "$root.log" >&2; rm -f "$root.log"; die "debootstrap failed"; }
    rm -f "$root.log"
    # Trim what an image does not need: package caches, lists, docs, man pages, locales.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/var/log/* "$root"/tmp/* "$root"/debootstrap
    find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true
    if [[ -z $arch ]]; then
        tar -C "$root" --numeric-owner -c . | docker import \
            --change 'ENV LANG=C.UTF-8' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' \
            --message "debootstrap --variant=minbase $SUITE $MIRROR${include:+ +$include}" \
            - "$tag" >/dev/null
    else
        # `docker import --platform` is ignored by an engine that is not "multi-platform capable"
        # (Docker 20.10 without experimental): the image would say amd64. The classic builder's
        # --platform does set it, and ADD unpacks a local tar with its owners and modes.
        local ctx=$root.ctx
        mkdir -p "$ctx"
        tar -C "$root" --numeric-owner -cf "$ctx/rootfs.tar" .
        printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' 'ENV LANG=C.UTF-8' \
            'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            "LABEL org.opencontainers.image.description=\"debootstrap --arch=$arch --variant=minbase $SUITE +$include\"" \
            'CMD ["/bin/bash"]' >"$ctx/Dockerfile"
        DOCKER_BUILDKIT=0 docker build -q "${platform[@]}" -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.log" || {
            cat "$ctx/build.log" >&2; rm -rf "$ctx"; die "docker build of $tag failed"; }
        rm -rf "$ctx"
    fi
    log "imported $tag in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

[[ $(id -u) == 0 ]] || die "run as root (debootstrap needs it)"
ensure_tools
MIRROR=$(find_mirror)
CACHE=${DEBOOTSTRAP_CACHE:-/var/cache/rancher-boot-debootstrap}
mkdir -p "$CACHE"

if [[ $arch == arm64 ]]; then
    if (( force )) || ! have_image "$ARM64_TAG"; then
        bootstrap "$ARM64_TAG" "erlang-nox" arm64
    else
        log "reusing $ARM64_TAG"
    fi
    exit 0
fi
if (( force )) || ! have_image "$BASE_TAG"; then
    bootstrap "$BASE_TAG" ""
else
    log "reusing $BASE_TAG"
fi
if (( force )) || ! have_image "$ELIXIR_TAG"; then
    bootstrap "$ELIXIR_TAG" "elixir"
else
    log "reusing $ELIXIR_TAG"
fi

# rancher-boot and fake-rancher-metadata as static musl binaries (x86_64 or aarch64), each in a
# FROM scratch image, so that a release image takes it with
#     COPY --from=rancher-boot:latest /rancher-boot /usr/local/bin/rancher-boot
#
#   docker build --target rancher-boot -t rancher-boot .                     (the default target)
#   docker build --target fake-rancher-metadata -t fake-rancher-metadata .
#
# The platform: TARGETARCH, amd64 (default) or arm64. BuildKit (docker buildx build --platform
# linux/amd64,linux/arm64) sets it and BUILDPLATFORM itself: the build stage runs on the build
# machine and cross-compiles (the aarch64 link is rust-lld's, .cargo/config.toml). The classic
# builder (DOCKER_BUILDKIT=0, Docker without buildx) sets neither: give --build-arg
# TARGETARCH=arm64 beside --platform linux/arm64. It cannot copy between stages of different
# platforms, so there the build stage runs on the target platform too: an arm64 BASE_IMAGE, run
# under qemu when the machine is not arm64 (docker/with-qemu-aarch64.sh registers it).
#
# BASE_IMAGE is the builder: the official Rust image by default (rustup adds the musl target).
# With PREBUILT_DIR any image with a shell will do; without a registry, docker/base-image.sh
# makes one from this machine's apt sources (rancher-boot/debian:bookworm; with --arch arm64,
# rancher-boot/debian-erlang:bookworm-arm64).
#
# Binaries built on the host instead of in the builder (fast; what docker/e2e.sh does):
#   cargo build --release --target x86_64-unknown-linux-musl --bins
#   docker build --build-arg PREBUILT_DIR=target/x86_64-unknown-linux-musl/release \
#                --target rancher-boot -t rancher-boot .
# and for arm64 (docker/e2e-arm64.sh):
#   cargo build --release --target aarch64-unknown-linux-musl --bins
#   DOCKER_BUILDKIT=0 docker build --platform linux/arm64 --build-arg TARGETARCH=arm64 \
#       --build-arg BASE_IMAGE=rancher-boot/debian-erlang:bookworm-arm64 \
#       --build-arg PREBUILT_DIR=target/aarch64-unknown-linux-musl/release \
#       --target rancher-boot -t rancher-boot:arm64 .
# PREBUILT_DIR is relative to the build context; .dockerignore lets exactly those files through
# from target/. A binary of the other architecture is refused. The stages are ordered so that the
# classic builder (which builds every stage before the target) never needs a stage it cannot build.

ARG BASE_IMAGE=rust:1-bookworm
ARG TARGETARCH
ARG BUILDPLATFORM

FROM --platform=${BUILDPLATFORM:-linux/${TARGETARCH:-amd64}} ${BASE_IMAGE} AS build
# Empty: build from source with the image's Rust toolchain. Set: copy the binaries from this
# directory of the build context, and build nothing.
ARG PREBUILT_DIR=
ARG TARGETARCH
WORKDIR /src
COPY . .
RUN set -eu; mkdir -p /out; \
    # The Rust target and the ELF e_machine (bytes 18-19, little-endian) of the platform.
    case "${TARGETARCH:-amd64}" in \
        amd64) target=x86_64-unknown-linux-musl; machine=3e00 ;; \
        arm64) target=aarch64-unknown-linux-musl; machine=b700 ;; \
        *) echo "error: TARGETARCH=$TARGETARCH: rancher-boot is built for amd64 or arm64" >&2; exit 1 ;; \
    esac; \
    if [ -n "$PREBUILT_DIR" ]; then \
        for bin in rancher-boot fake-rancher-metadata; do \
            test -x "$PREBUILT_DIR/$bin" || { echo "error: $PREBUILT_DIR/$bin: no such executable in the build context" >&2; exit 1; }; \
            cp "$PREBUILT_DIR/$bin" /out/; \
        done; \
    else \
        rustup target add "$target"; \
        cargo build --release --locked --target "$target" --bins; \
        cp "target/$target/release/rancher-boot" "target/$target/release/fake-rancher-metadata" /out/; \
    fi; \
    for bin in /out/*; do \
        # Static or nothing: a dynamically linked binary would not run FROM scratch.
        if grep -q -e ld-linux -e ld-musl "$bin"; then echo "error: $bin is not static" >&2; exit 1; fi; \
        # The platform's or nothing: an x86_64 binary in an arm64 image would not run.
        if [ "$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' \n')" != "$machine" ]; then \
            echo "error: $bin is not built for $target (TARGETARCH=${TARGETARCH:-amd64}; PREBUILT_DIR=$PREBUILT_DIR)" >&2; exit 1; \
        fi; \
    done; \
    echo "$target:"; ls -l /out

FROM scratch AS fake-rancher-metadata
COPY --from=build /out/fake-rancher-metadata /fake-rancher-metadata
EXPOSE 80
ENTRYPOINT ["/fake-rancher-metadata"]
CMD ["--help"]

FROM scratch AS rancher-boot
COPY --from=build /out/rancher-boot /rancher-boot
ENTRYPOINT ["/rancher-boot"]

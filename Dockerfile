# rancher-boot and fake-rancher-metadata as static x86_64 musl binaries, each in a FROM scratch
# image, so that a release image takes it with
#     COPY --from=rancher-boot:latest /rancher-boot /usr/local/bin/rancher-boot
#
#   docker build --target rancher-boot -t rancher-boot .                     (the default target)
#   docker build --target fake-rancher-metadata -t fake-rancher-metadata .
#
# BASE_IMAGE is the builder: the official Rust image by default (rustup adds the musl target).
# With PREBUILT_DIR any image with a shell will do; without a registry, docker/base-image.sh
# makes one from this machine's apt sources (rancher-boot/debian:bookworm).
#
# Binaries built on the host instead of in the builder (fast; what docker/e2e.sh does):
#   cargo build --release --target x86_64-unknown-linux-musl --bins
#   docker build --build-arg PREBUILT_DIR=target/x86_64-unknown-linux-musl/release \
#                --target rancher-boot -t rancher-boot .
# PREBUILT_DIR is relative to the build context; .dockerignore lets exactly those two files
# through from target/. The stages are ordered so that the classic builder (no BuildKit, which
# builds every stage before the target) never needs a stage it cannot build.

ARG BASE_IMAGE=rust:1-bookworm

FROM ${BASE_IMAGE} AS build
# Empty: build from source with the image's Rust toolchain. Set: copy the binaries from this
# directory of the build context, and build nothing.
ARG PREBUILT_DIR=
ARG TARGET=x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN set -eu; mkdir -p /out; \
    if [ -n "$PREBUILT_DIR" ]; then \
        for bin in rancher-boot fake-rancher-metadata; do \
            test -x "$PREBUILT_DIR/$bin" || { echo "error: $PREBUILT_DIR/$bin: no such executable in the build context" >&2; exit 1; }; \
            cp "$PREBUILT_DIR/$bin" /out/; \
        done; \
    else \
        rustup target add "$TARGET"; \
        cargo build --release --locked --target "$TARGET" --bins; \
        cp "target/$TARGET/release/rancher-boot" "target/$TARGET/release/fake-rancher-metadata" /out/; \
    fi; \
    # Static or nothing: a dynamically linked binary would not run FROM scratch.
    for bin in /out/*; do \
        if grep -q -e ld-linux -e ld-musl "$bin"; then echo "error: $bin is not static" >&2; exit 1; fi; \
    done; \
    ls -l /out

FROM scratch AS fake-rancher-metadata
COPY --from=build /out/fake-rancher-metadata /fake-rancher-metadata
EXPOSE 80
ENTRYPOINT ["/fake-rancher-metadata"]
CMD ["--help"]

FROM scratch AS rancher-boot
COPY --from=build /out/rancher-boot /rancher-boot
ENTRYPOINT ["/rancher-boot"]

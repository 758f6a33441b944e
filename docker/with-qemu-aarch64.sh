#!/usr/bin/env bash
# Runs a command with the kernel able to execute aarch64 binaries (through Debian's
# qemu-user-static), and leaves the machine's binfmt_misc as it found it:
#
#   docker/with-qemu-aarch64.sh COMMAND [ARGS...]
#
# - binfmt_misc not mounted: mounted for the command, unmounted after it.
# - no `qemu-aarch64` handler: registered from /usr/lib/binfmt.d/qemu-aarch64.conf (flags OPF:
#   the interpreter is opened once, so it also works inside containers and chroots that do not
#   hold it), removed after the command.
# - a handler present but disabled: enabled for the command, disabled after it.
# - a handler present and enabled (installed by binfmt-support/systemd-binfmt, Docker Desktop,
#   tonistiigi/binfmt, or an enclosing run of this script): used as it is, left alone.
#
# The restore runs on exit, on error and on SIGINT/SIGTERM (not on SIGKILL). qemu-user-static is
# installed with apt-get when it is missing. Runs of this script nest; two independent runs at the
# same time do not (the first to end removes what it registered).
# Exit status: the command's.
set -euo pipefail

BINFMT=/proc/sys/fs/binfmt_misc
NAME=qemu-aarch64
CONF=/usr/lib/binfmt.d/$NAME.conf

log() { printf 'with-qemu-aarch64: %s\n' "$*" >&2; }
die() { printf 'with-qemu-aarch64: error: %s\n' "$*" >&2; exit 1; }

(($#)) || die "usage: docker/with-qemu-aarch64.sh COMMAND [ARGS...]"

if [[ ! -r $CONF ]] || ! command -v qemu-aarch64-static >/dev/null; then
    log "installing qemu-user-static"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
fi
[[ -r $CONF ]] || die "$CONF is missing (Debian's qemu-user-static provides it)"

mounted=0 registered=0 enabled=0
restore() {
    # Undo in reverse order, each step only if this run did it.
    if ((enabled)); then echo 0 >"$BINFMT/$NAME" && log "disabled $NAME again"; fi
    if ((registered)) && [[ -e $BINFMT/$NAME ]]; then echo -1 >"$BINFMT/$NAME" && log "unregistered $NAME"; fi
    if ((mounted)); then umount "$BINFMT" && log "unmounted $BINFMT"; fi
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ! -e $BINFMT/register ]]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" || die "cannot mount binfmt_misc on $BINFMT (needs root)"
    mounted=1
    log "mounted $BINFMT"
fi
if [[ ! -e $BINFMT/$NAME ]]; then
    # The conf's one line is exactly what the register file takes.
    grep -v '^#' "$CONF" | head -n 1 >"$BINFMT/register" || die "cannot register $NAME from $CONF"
    registered=1
    log "registered $NAME from $CONF"
elif [[ $(head -n 1 "$BINFMT/$NAME") != enabled ]]; then
    echo 1 >"$BINFMT/$NAME"
    enabled=1
    log "enabled $NAME"
fi

# Not exec: the trap must run after the command.
status=0
"$@" || status=$?
exit "$status"

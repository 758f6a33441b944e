#!/usr/bin/env bash
# Fuzz rancher-boot's parsers of untrusted input: each target runs for N seconds (default 30, for
# CI) from the committed corpus; any crash or failed invariant fails the script and leaves the
# input in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [--seconds N] [--target NAME]... [--merge] [--check-found]
#
#   --seconds N    run each target for N seconds (default 30)
#   --target NAME  run only this target (repeatable; default: every target in fuzz/Cargo.toml)
#   --merge        afterwards, merge the inputs that found new coverage into fuzz/corpus/NAME
#                  (libFuzzer's -merge=1 keeps only inputs that add coverage; the corpus stays small)
#   --check-found  also replay every reproducer in fuzz/artifacts-found/ and fail if one still fails
#
#
# Toolchain: stable Rust only. cargo-fuzz is built with `--sanitizer none`, which passes no -Z flag,
# so no nightly and no RUSTC_BOOTSTRAP are needed (the targets are safe Rust; AddressSanitizer
# would add little). The coverage instrumentation (-Cpasses=sancov-module, -Cllvm-args=...) is
# accepted by stable rustc. libfuzzer-sys compiles libFuzzer's C++ with the system c++ (g++).
# The fuzz crate is its own workspace and builds in fuzz/target, apart from the main build.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
targets=()
merge=0
check_found=0
while (($#)); do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --target) targets+=("$2"); shift 2 ;;
        --target=*) targets+=("${1#*=}"); shift ;;
        --merge) merge=1; shift ;;
        --check-found) check_found=1; shift ;;
        -h|--help) sed -n '2,20p' fuzz/run.sh; exit 0 ;;
        *) echo "fuzz/run.sh: unknown argument $1" >&2; exit 64 ;;
    esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz/run.sh: --seconds needs a whole number" >&2; exit 64; }

# Tools: a C++ compiler for libFuzzer, and cargo-fuzz.
if ! command -v c++ >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo fuzz list)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# cargo fuzz build has no --locked, so a drifted fuzz/Cargo.lock would be rewritten unseen: check
# that the committed one needs no change first.
cargo metadata --locked --manifest-path fuzz/Cargo.toml --format-version 1 >/dev/null
echo "==> fuzz: building ${targets[*]} (stable, --sanitizer none)"
if ! cargo fuzz build --sanitizer none >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    echo "fuzz/run.sh: the fuzz targets do not build" >&2
    exit 1
fi
bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release

failed=()
summary=()
for t in "${targets[@]}"; do
    [[ -x "$bin_dir/$t" ]] || { echo "fuzz/run.sh: no binary for target $t" >&2; exit 1; }
    mkdir -p "$work/$t" "fuzz/corpus/$t" "fuzz/artifacts/$t"
    dict=()
    [[ -f "fuzz/$t.dict" ]] && dict=("-dict=fuzz/$t.dict")
    echo "==> fuzz: $t for ${seconds}s ($(find "fuzz/corpus/$t" -type f | wc -l) corpus files)"
    # New inputs go to $work/$t; the committed corpus is read, never written, unless --merge.
    set +e
    "$bin_dir/$t" "$work/$t" "fuzz/corpus/$t" "${dict[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$work/$t.log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/$t.log" | grep -o '[0-9]*$' || echo '?')
    if ((rc != 0)); then
        failed+=("$t")
        echo "FAIL: fuzz target $t (exit $rc) after $execs executions:" >&2
        grep -E -A8 "panicked at|ERROR: libFuzzer|SUMMARY" "$work/$t.log" | head -n 40 >&2 || tail -n 40 "$work/$t.log" >&2
    else
        summary+=("$t: $execs executions in ${seconds}s, no crash")
    fi
    if ((merge)); then
        "$bin_dir/$t" -merge=1 "fuzz/corpus/$t" "$work/$t" "${dict[@]}" >/dev/null 2>&1
        echo "    merged: fuzz/corpus/$t now holds $(find "fuzz/corpus/$t" -type f | wc -l) files"
    fi
done

if ((check_found)) && [[ -d fuzz/artifacts-found ]]; then
    for f in fuzz/artifacts-found/*; do
        [[ -f "$f" ]] || continue
        t=$(basename "$f"); t=${t%%-*}
        [[ -x "$bin_dir/$t" ]] || continue
        if "$bin_dir/$t" "$f" >"$work/replay.log" 2>&1; then
            echo "fixed: $f"
        else
            failed+=("$f")
            echo "STILL FAILS: $f: $(grep -A1 'panicked at' "$work/replay.log" | tail -n 1)" >&2
        fi
    done
fi

printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzz: ${#failed[@]} failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"

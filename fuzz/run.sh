#!/usr/bin/env bash
# Runs every fuzz target (or those named after SECONDS) with AFL++ for
# SECONDS each, one after another, and prints executions, executions per
# second and crashes/hangs per target. Exits 1 if any target found a crash
# or a hang.
#
#   fuzz/run.sh SECONDS [TARGET...]
#
# Environment:
#   FUZZ_JOBS=N        run N targets at once (default 1)
#   FUZZ_TOOLS=DIR     where cargo-afl and AFL++ are installed (default
#                      $HOME/.cache/agora-fuzz); installed from crates.io
#                      (`cargo install cargo-afl`, `cargo afl config --build`)
#                      when missing
#   FUZZ_OUT=DIR       AFL++ output directories (default target/fuzz-out)
#   FUZZ_BUILD_DIR     where the instrumented build goes (default
#                      ${CARGO_TARGET_DIR:-target}/afl)
#   FUZZ_EXECS=N       stop a target after N executions (AFL++ -E) instead
#                      of, or before, SECONDS
set -euo pipefail

SECONDS_PER_TARGET=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
ALL_TARGETS=(wire hello wal snapshot signing_state signing_file certificate tx block state_proof state_sync light_block)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${FUZZ_TOOLS:-$HOME/.cache/agora-fuzz}
OUT=${FUZZ_OUT:-$ROOT/target/fuzz-out}
JOBS=${FUZZ_JOBS:-1}
BUILD_DIR=${FUZZ_BUILD_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/afl}

export PATH="$TOOLS/bin:$PATH"
# cargo-afl keeps AFL++ under $XDG_DATA_HOME/afl.rs.
export XDG_DATA_HOME="$TOOLS/data"

if ! command -v cargo-afl >/dev/null 2>&1; then
    echo "== installing cargo-afl into $TOOLS (crates.io)"
    CARGO_TARGET_DIR="$TOOLS/build" cargo install --locked cargo-afl --root "$TOOLS"
fi
if ! compgen -G "$XDG_DATA_HOME/afl.rs/rustc-$(rustc -V | cut -d' ' -f2)-*/afl.rs-*/afl/bin/afl-fuzz" >/dev/null; then
    echo "== building AFL++ (cargo afl config --build)"
    cargo afl config --build
fi

echo "== building the instrumented targets"
(cd "$ROOT" && CARGO_TARGET_DIR="$BUILD_DIR" cargo afl build --release \
    -p agora-fuzz --features afl $(printf -- '--bin fuzz_%s ' "${TARGETS[@]}"))

# A container has no CPU frequency governor nor core dump pipe to check.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CRASHES=0 AFL_AUTORESUME=0
export AFL_FAST_CAL=1 AFL_NO_STARTUP_CALIBRATION=1

run_one() {
    local t=$1 out="$OUT/$1"
    rm -rf "$out"
    mkdir -p "$out"
    local extra=()
    if [ -n "${FUZZ_EXECS:-}" ]; then extra=(-E "$FUZZ_EXECS"); fi
    # -t: an input that runs over a second is a hang; -m: 2 GiB of memory.
    cargo afl fuzz -i "$ROOT/fuzz/corpus/$t" -o "$out" -V "$SECONDS_PER_TARGET" \
        -t 1000 -m 2048 "${extra[@]}" -- "$BUILD_DIR/release/fuzz_$t" >"$out/afl.log" 2>&1 || {
        echo "afl-fuzz failed for $t:" >&2
        tail -20 "$out/afl.log" >&2
        return 1
    }
}

echo "== fuzzing ${TARGETS[*]} for ${SECONDS_PER_TARGET}s each, $JOBS at a time"
pids=()
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done

stat() { sed -n "s/^$2 *: *//p" "$1" | head -1; }
printf '%-14s %12s %10s %8s %8s %8s\n' target execs execs/s crashes hangs corpus
found=0
for t in "${TARGETS[@]}"; do
    s="$OUT/$t/default/fuzzer_stats"
    if [ ! -f "$s" ]; then
        printf '%-14s %s\n' "$t" "no stats (see $OUT/$t/afl.log)"
        failed=1
        continue
    fi
    execs=$(stat "$s" execs_done)
    run=$(( $(stat "$s" last_update) - $(stat "$s" start_time) ))
    [ "$run" -gt 0 ] || run=1
    crashes=$(stat "$s" saved_crashes)
    hangs=$(stat "$s" saved_hangs)
    printf '%-14s %12s %10s %8s %8s %8s\n' "$t" "$execs" "$((execs / run))" \
        "$crashes" "$hangs" "$(stat "$s" corpus_count)"
    if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
        found=1
        echo "   findings: $OUT/$t/default/crashes $OUT/$t/default/hangs" >&2
    fi
done
if [ "$found" != 0 ] || [ "$failed" != 0 ]; then exit 1; fi

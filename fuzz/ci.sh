#!/usr/bin/env bash
# CI's fuzzing step: replays the checked-in corpus through every target
# (no AFL++ needed), then builds AFL++ and the instrumented targets and
# fuzzes each target briefly. Fails on any crash or hang.
#
#   FUZZ_SECONDS=20 bash fuzz/ci.sh
#
# FUZZ_SECONDS: seconds per target (default 20; 0 skips the AFL++ part).
# FUZZ_TOOLS:   where cargo-afl and AFL++ are kept between runs (default
#               $HOME/.cache/agora-fuzz; built from crates.io when missing,
#               about a minute of CPU).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${FUZZ_SECONDS:-20}

echo "== corpus replay (cargo test -p agora-fuzz)"
(cd "$ROOT" && cargo test -p agora-fuzz)

if [ "$SECS" = 0 ]; then
    echo "== FUZZ_SECONDS=0: AFL++ run skipped"
    exit 0
fi
# The instrumented build (every dependency, opt-level 3, one codegen unit:
# about 16 CPU-minutes from scratch) is kept beside the tools, so only the
# first run on a machine pays for it.
export FUZZ_TOOLS=${FUZZ_TOOLS:-$HOME/.cache/agora-fuzz}
export FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$FUZZ_TOOLS/target}
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)} exec bash "$ROOT/fuzz/run.sh" "$SECS"

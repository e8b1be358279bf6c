#!/usr/bin/env bash
# Measures state sync on loopback (issue 13's target: a node joins a chain
# holding 100 k accounts in ≤ 30 s). Starts 4 validators whose genesis holds
# ACCOUNTS extra accounts, stops validator 3 at once and wipes its store,
# lets the others pass a snapshot, then starts validator 3 with state sync
# from a checkpoint at height 5 and reports how long it took to install the
# snapshot and to reach the others' tip.
#
#   cargo build --release -p agora-node -p agora-testnet --bins
#   testnet/bench/state_sync.sh [ACCOUNTS] [BIN_DIR]
set -euo pipefail
ACCOUNTS=${1:-100000}
BIN=${2:-target/release}
DIR=$(mktemp -d)/net
PORT=$(( (RANDOM % 2000 + 3000) * 10 ))
trap '"$BIN/agora-testnet" down --dir "$DIR" >/dev/null 2>&1 || true' EXIT

AGORA_BIN="$BIN/agora" "$BIN/agora-testnet" up --detach --validators 4 --dir "$DIR" \
  --base-port "$PORT" --extra-accounts "$ACCOUNTS" --snapshot-interval 50 >/dev/null
pid3=$(python3 -c "import json;print(json.load(open('$DIR/testnet.json'))['nodes'][3]['pid'])")
kill -9 "$pid3"; while kill -0 "$pid3" 2>/dev/null; do sleep 0.05; done
rm -rf "$DIR/node3/data"
grpc0=$(python3 -c "import json;print(json.load(open('$DIR/testnet.json'))['nodes'][0]['grpc'])")
height() { "$BIN/agora" query status --node "$1" -o json 2>/dev/null \
  | python3 -c "import json,sys;print(json.load(sys.stdin)['latest_height'])" 2>/dev/null || echo 0; }
until [ "$(height "$grpc0")" -ge 60 ]; do sleep 0.2; done
hash=$("$BIN/agora" query block 5 --node "$grpc0" -o json \
  | python3 -c "import json,sys;print(json.load(sys.stdin)['block_hash'])")
python3 - "$DIR/node3/config.toml" "$hash" <<'PY'
import sys
p, h = sys.argv[1], sys.argv[2]
import re
t = open(p).read()
t = re.sub(r"(?m)^enable = false$", "enable = true", t)
t = re.sub(r"(?m)^trust_height = \d+$", "trust_height = 5", t)
t = re.sub(r'(?m)^trust_hash = ".*"$', f'trust_hash = "{h}"', t)
open(p, "w").write(t)
PY
grpc3=$(python3 -c "import json;print(json.load(open('$DIR/testnet.json'))['nodes'][3]['grpc'])")
t0=$(date +%s.%N)
"$BIN/agora" start --home "$DIR/node3" > "$DIR/node3/state_sync.log" 2>&1 &
until grep -q "snapshot installed" "$DIR/node3/state_sync.log"; do
  sleep 0.05
  kill -0 $! 2>/dev/null || { tail -20 "$DIR/node3/state_sync.log"; exit 1; }
done
t1=$(date +%s.%N)
target=$(height "$grpc0")
until [ "$(height "$grpc3")" -ge "$target" ]; do sleep 0.1; done
t2=$(date +%s.%N)
kill $! 2>/dev/null || true
grep -E "state sync:|snapshot taken" "$DIR/node3/state_sync.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200
grep -h "snapshot taken" "$DIR"/node0/*.log | sed 's/\x1b\[[0-9;]*m//g' | tail -1 | cut -c1-200
python3 -c "print(f'accounts $ACCOUNTS: snapshot installed {$t1-$t0:.1f} s after start; at the tip ($target) {$t2-$t0:.1f} s after start')"

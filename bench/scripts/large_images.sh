#!/usr/bin/env bash
# Peak RSS of a kefu binary while 16 visitors upload a 40-megapixel PNG each, at once
# (docs/benchmarks.md, "The security changes"). Usage: large_images.sh target/release/kefu [port]
# Starts `kefu serve` on a fresh data dir (embedded PostgreSQL), signs a merchant up, opens 16
# visitor sessions, uploads in parallel, prints the answers and RSS before / peak / after.
set -u
BIN=$1
PORT=${2:-18081}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 "$(dirname "$0")/make_large_png.py" "$WORK/big40.png" >/dev/null
KEFU_LOG=warn KEFU_SPARE_SCHEMAS=0 "$BIN" serve -p "$PORT" --data-dir "$WORK/data" >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "localhost:$PORT/healthz" >/dev/null && break; sleep 0.3; done
json() { python3 -c "import sys, json; print(json.load(sys.stdin)['$1'])"; }
ENT=$(curl -s "localhost:$PORT/api/v1/signup" -H 'content-type: application/json' \
  -d '{"company":"Images Shop","email":"images@example.com","password":"correct horse battery"}' | json ent_id)
tokens=()
for _ in $(seq 1 16); do
  tokens+=("$(curl -s "localhost:$PORT/api/v1/visitor/session" -H 'content-type: application/json' \
    -d "{\"ent_id\":\"$ENT\"}" | json token)")
done
sleep 1
BEFORE=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
for t in "${tokens[@]}"; do
  curl -s -o /dev/null -w '%{http_code}\n' "localhost:$PORT/api/v1/uploads" \
    -H "authorization: Bearer $t" -F "file=@$WORK/big40.png" &
done | sort | uniq -c
PEAK=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
AFTER=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
echo "rss before ${BEFORE} KiB, peak ${PEAK} KiB, after ${AFTER} KiB"
kill -TERM "$PID"
wait "$PID" 2>/dev/null

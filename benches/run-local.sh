#!/usr/bin/env bash
# Measures a fresh local three-node cluster with the standard workload (1 KiB records,
# replication 3) and prints one JSON line per mode:
#   (a) sync:      1 producer, 1 publish in flight, batch 1
#   (b) pipelined: 4 producers x 8 in flight, batch 16
#   (c) pipe256:   1 producer x 256 in flight, batch 1 (the shape of the NATS peer's window)
#   (d) consume:   everything back, from earliest
#
#   benches/run-local.sh [DURATION]          DURATION of each produce mode [20s]
#
# Environment: PROFILE [debug] (or release: `cargo build --workspace --release` first),
# OUT [stdout only] file the JSON lines are appended to, MAX_LOAD [0.7] wait (up to 30 min)
# until the 1-minute load average is below it, so other work does not skew the figures.
# With ../shared/peers/cpu-sampler.py present, each line also says how many CPU-seconds other
# processes used meanwhile ("foreign_cpu_s"; above ~1 the figures are contaminated).
# The cluster runs from copies of the binaries in a temporary directory (a build elsewhere
# cannot swap them mid-run) and its data is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
DURATION="${1:-20s}"
PROFILE="${PROFILE:-debug}"
MAX_LOAD="${MAX_LOAD:-0.7}"
if [[ "$PROFILE" == debug ]]; then cargo build --workspace; fi
WORK="$(mktemp -d /tmp/paxlog-bench.XXXX)"
for bin in paxlog paxlog-broker paxlog-bench; do cp "$CARGO_TARGET_DIR/$PROFILE/$bin" "$WORK/"; done

cluster_pid=""
cleanup() {
  if [[ -n "$cluster_pid" ]]; then
    kill -INT "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

waited=0
until awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$MAX_LOAD" 'BEGIN{exit !(l < m)}'; do
  (( waited >= 1800 )) && { echo "load still high; running anyway" >&2; break; }
  (( waited % 60 == 0 )) && echo "waiting for a quiet machine: load $(cut -d' ' -f1 /proc/loadavg)" >&2
  sleep 10; waited=$((waited + 10))
done

"$WORK/paxlog" cluster up --data "$WORK/data" --broker-bin "$WORK/paxlog-broker" >"$WORK/cluster.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 60); do
  "$WORK/paxlog" status >/dev/null 2>&1 && break
  sleep 0.5
done
"$WORK/paxlog" status >&2

SAMPLER=""
if [[ -f ../shared/peers/cpu-sampler.py ]]; then
  sed 's/^OURS = {.*}/OURS = {"paxlog-broker", "paxlog-bench", "paxlog"}/' \
    ../shared/peers/cpu-sampler.py >"$WORK/sampler.py"
  SAMPLER="$WORK/sampler.py"
fi

measure() { # label, then paxlog-bench arguments: prints (and appends to $OUT) one JSON line
  local label="$1" line sampler_pid="" foreign="null"
  shift
  if [[ -n "$SAMPLER" ]]; then
    python3 "$SAMPLER" >"$WORK/cpu.txt" &
    sampler_pid=$!
  fi
  line="$("$WORK/paxlog-bench" "$@" --json)"
  if [[ -n "$sampler_pid" ]]; then
    kill -TERM "$sampler_pid"; wait "$sampler_pid" || true
    foreign="$(sed -n 's/.* foreign_s=\([0-9.]*\).*/\1/p' "$WORK/cpu.txt")"
  fi
  line="{\"label\":\"$label\",\"profile\":\"$PROFILE\",\"foreign_cpu_s\":${foreign:-null},${line#\{}"
  echo "$line"
  if [[ -n "${OUT:-}" ]]; then echo "$line" >>"$OUT"; fi
}
measure sync produce --topic bench --duration "$DURATION"
measure pipelined produce --topic bench --duration "$DURATION" --producers 4 --in-flight 8 --batch 16
measure pipe256 produce --topic bench --duration "$DURATION" --in-flight 256
measure consume consume --topic bench --from earliest

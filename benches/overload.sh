#!/usr/bin/env bash
# Broker memory under a producer flood: a fresh local cluster whose brokers hold at most
# BUDGET bytes of publishes awaiting consensus (max_inflight_bytes), flooded by many
# producers with many large publishes in flight; prints one JSON line with the flood's
# result (throughput, errors by kind: THROTTLED is the backpressure) and each broker's peak
# resident memory (VmHWM) against the budget.
#
#   benches/overload.sh [DURATION]     DURATION of the flood [20s]
#
# Environment: BUDGET [33554432] (32 MiB), PRODUCERS [16], IN_FLIGHT [32], BATCH [64]
# (1 KiB records: 16 x 32 x 64 KiB = 32 MiB asked to be in flight at once), PROFILE
# [release], OUT, MAX_LOAD (see benches/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-20s}"
PROFILE="${PROFILE:-release}"
BUDGET="${BUDGET:-33554432}"
source benches/lib.sh
wait_quiet
export PAXLOG_MAX_INFLIGHT_BYTES="$BUDGET"
start_cluster 3
unset PAXLOG_MAX_INFLIGHT_BYTES
peaks() {
  local out="" pid
  for pid in $(pgrep -f "^$WORK/paxlog-broker"); do
    out+="$(awk '/VmHWM/ {print $2 * 1024}' "/proc/$pid/status"),"
  done
  echo "[${out%,}]"
}
before="$(peaks)"
measure "\"label\":\"overload\",\"budget\":$BUDGET,\"rss_before\":$before" produce --topic flood \
  --duration "$DURATION" --producers "${PRODUCERS:-16}" --in-flight "${IN_FLIGHT:-32}" \
  --batch "${BATCH:-64}" --timeout 30s >"$WORK/flood.json"
echo "{\"peak_rss\":$(peaks),$(tail -c +2 "$WORK/flood.json")"

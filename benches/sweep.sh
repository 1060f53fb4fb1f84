#!/usr/bin/env bash
# Scaling curves of a local cluster (replication 3, fsync before every acknowledgement):
# pipelined publish throughput and latency against one setting at a time, then one SVG chart
# per sweep (`paxlog-bench plot`).
#   partitions   1 2 4 8 16 32 64   (4 producers x 8 in flight, batch 16, 1 KiB)
#   producers    1 2 4 8 16         (8 in flight each, batch 16, 1 KiB, 3 partitions)
#   record_size  100 B .. 64 KiB    (4 x 8 in flight; batch 16, fewer above 4 KiB: 64 KiB a request)
#   nodes        3 5                (4 x 8 in flight, batch 16, 1 KiB, 3 partitions)
#
#   benches/sweep.sh [DURATION]     DURATION of each point [8s]
#
# Environment: PROFILE [release] (`cargo build --workspace --release` first), SWEEPS [all four]
# which sweeps to run, OUT [benches/results/sweep.jsonl] where the JSON lines go (replaced),
# CHARTS [docs/benchmarks] where the charts go, MAX_LOAD [0.7] (see benches/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-8s}"
PROFILE="${PROFILE:-release}"
SWEEPS="${SWEEPS:-partitions producers record_size nodes}"
OUT="${OUT:-benches/results/sweep.jsonl}"
CHARTS="${CHARTS:-docs/benchmarks}"
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
source benches/lib.sh
wait_quiet

point() { # SWEEP X, then paxlog-bench produce arguments
  local sweep="$1" x="$2"
  shift 2
  measure "\"sweep\":\"$sweep\",\"x\":$x" produce --duration "$DURATION" --warmup 1s "$@"
}

for sweep in $SWEEPS; do
  case "$sweep" in
    partitions)
      start_cluster 3
      for p in 1 2 4 8 16 32 64; do
        point partitions "$p" --topic "partitions-$p" --partitions "$p" --producers 4 --in-flight 8 --batch 16
      done ;;
    producers)
      start_cluster 3
      for n in 1 2 4 8 16; do
        point producers "$n" --topic "producers-$n" --producers "$n" --in-flight 8 --batch 16
      done ;;
    record_size)
      start_cluster 3
      for s in 100 1024 4096 16384 65536; do
        batch=$(( 65536 / s )); (( batch > 16 )) && batch=16; (( batch < 1 )) && batch=1
        point record_size "$s" --topic "size-$s" --record-size "$s" --producers 4 --in-flight 8 --batch "$batch"
      done ;;
    nodes)
      for n in 3 5; do
        start_cluster "$n"
        point nodes "$n" --topic "nodes-$n" --producers 4 --in-flight 8 --batch 16
      done ;;
    *) echo "unknown sweep $sweep (partitions, producers, record_size, nodes)" >&2; exit 2 ;;
  esac
done
stop_cluster
"$WORK/paxlog-bench" plot "$OUT" --out "$CHARTS"

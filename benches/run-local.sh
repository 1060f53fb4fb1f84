#!/usr/bin/env bash
# Measures a fresh local three-node cluster with the standard workload (1 KiB records,
# replication 3) and prints one JSON line per mode:
#   (a) sync:      1 producer, 1 publish in flight, batch 1
#   (b) pipelined: 4 producers x 8 in flight, batch 16
#   (c) pipe256:   1 producer x 256 in flight, batch 1 (the shape of the NATS peer's window)
#   (e) batch128:  4 producers x 8 in flight, batch 128 (what a producer with linger fills)
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
# cannot swap them mid-run) and its data is deleted at the end (see benches/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-20s}"
source benches/lib.sh
wait_quiet
start_cluster 3
measure '"label":"sync"' produce --topic bench --duration "$DURATION"
measure '"label":"pipelined"' produce --topic bench --duration "$DURATION" --producers 4 --in-flight 8 --batch 16
measure '"label":"pipe256"' produce --topic bench --duration "$DURATION" --in-flight 256
measure '"label":"batch128"' produce --topic bench --duration "$DURATION" --producers 4 --in-flight 8 --batch 128
measure '"label":"consume"' consume --topic bench --from earliest

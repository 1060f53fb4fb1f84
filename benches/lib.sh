# Shared by benches/run-local.sh and benches/sweep.sh (sourced, not run): a fresh local
# cluster from copies of the binaries, a wait for a quiet machine, and one measurement as a
# JSON line. Expects PROFILE, and sets WORK (deleted on exit with the cluster's data).
source scripts/setup.sh
PROFILE="${PROFILE:-debug}"
MAX_LOAD="${MAX_LOAD:-0.7}"
if [[ "$PROFILE" == debug ]]; then cargo build --workspace; fi
WORK="$(mktemp -d /tmp/paxlog-bench.XXXX)"
# The cluster runs from copies: a build elsewhere cannot swap the binaries mid-run.
for bin in paxlog paxlog-broker paxlog-bench; do cp "$CARGO_TARGET_DIR/$PROFILE/$bin" "$WORK/"; done

cluster_pid=""
stop_cluster() {
  if [[ -n "$cluster_pid" ]]; then
    kill -INT "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
    cluster_pid=""
  fi
  rm -rf "$WORK/data"
}
cleanup() {
  # A broker that died mid-run (its process exited) leaves its logs for a post-mortem.
  if [[ -n "$cluster_pid" ]] && ! kill -0 "$cluster_pid" 2>/dev/null || grep -qs "exited" "$WORK/cluster.log"; then
    local keep
    keep="$(mktemp -d /tmp/paxlog-bench-logs.XXXX)"
    cp "$WORK"/cluster.log "$WORK"/data/*.log "$keep/" 2>/dev/null || true
    echo "a broker or the cluster exited during the run: logs kept in $keep" >&2
  fi
  stop_cluster
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_quiet() { # until the 1-minute load average is below MAX_LOAD (at most 30 minutes)
  local waited=0
  until awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$MAX_LOAD" 'BEGIN{exit !(l < m)}'; do
    (( waited >= 1800 )) && { echo "load still high; running anyway" >&2; break; }
    (( waited % 60 == 0 )) && echo "waiting for a quiet machine: load $(cut -d' ' -f1 /proc/loadavg)" >&2
    sleep 10; waited=$((waited + 10))
  done
}

start_cluster() { # [NODES]: a fresh cluster on empty data, once every node serves
  stop_cluster
  "$WORK/paxlog" cluster up --nodes "${1:-3}" --data "$WORK/data" --broker-bin "$WORK/paxlog-broker" \
    >"$WORK/cluster.log" 2>&1 &
  cluster_pid=$!
  for _ in $(seq 60); do
    "$WORK/paxlog" status >/dev/null 2>&1 && break
    sleep 0.5
  done
  "$WORK/paxlog" status >&2
}

SAMPLER=""
if [[ -f ../shared/peers/cpu-sampler.py ]]; then
  sed 's/^OURS = {.*}/OURS = {"paxlog-broker", "paxlog-bench", "paxlog"}/' \
    ../shared/peers/cpu-sampler.py >"$WORK/sampler.py"
  SAMPLER="$WORK/sampler.py"
fi

measure() { # FIELDS, then paxlog-bench arguments: prints (and appends to $OUT) one JSON line
  # FIELDS are JSON members put first, e.g. '"label":"sync"'.
  local fields="$1" line sampler_pid="" foreign="null"
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
  line="{${fields},\"profile\":\"$PROFILE\",\"foreign_cpu_s\":${foreign:-null},${line#\{}"
  echo "$line"
  if [[ -n "${OUT:-}" ]]; then echo "$line" >>"$OUT"; fi
}

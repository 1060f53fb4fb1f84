#!/usr/bin/env bash
# Checks that every metric a Grafana dashboard queries is exposed by paxlog: extracts the
# metric names from the dashboard's PromQL (panel targets and template variable queries)
# and fails if one is missing from the given /metrics scrapes.
#
#   deploy/grafana/check-metrics.sh DASHBOARD.json SCRAPE...
#
# A SCRAPE is a file with /metrics text or an http(s) URL, e.g. one broker and one runner:
#
#   deploy/grafana/check-metrics.sh deploy/grafana/paxlog.json \
#       http://127.0.0.1:9001/metrics http://127.0.0.1:9300/metrics
#
# Families appear on /metrics only once they have a series: produce, consume and run a
# trigger (one that dead-letters too) before scraping, or list the missing ones by hand.
# Names are compared as exposed (OpenMetrics): counters as NAME_total, histograms as
# NAME_bucket / NAME_sum / NAME_count. Needs python3 (standard library) and, for URLs, curl.
# Exit status: 0 all present, 1 some missing, 2 usage error.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
dashboard=$1
shift

scrapes=$(mktemp)
trap 'rm -f "$scrapes"' EXIT
for source in "$@"; do
  case $source in
    http://* | https://*) curl -fsS --max-time 10 "$source" >>"$scrapes" ;;
    *) cat "$source" >>"$scrapes" ;;
  esac
  echo >>"$scrapes"
done

python3 - "$dashboard" "$scrapes" <<'PY'
import json
import re
import sys

dashboard_path, scrape_path = sys.argv[1], sys.argv[2]

# PromQL words that are not metric names: aggregations, functions (always followed by "("
# and dropped below anyway), keywords and modifiers.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan", "atan2", "start", "end",
}


def queries(node):
    """Every PromQL text in the dashboard: targets' expr, variables' query/definition."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                yield value["query"]
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def metric_names(promql):
    text = promql
    # label_values(metric{...}, label) / label_values(label): keep only the selector.
    text = re.sub(r"label_values\(\s*([^,(){}]*(?:\{[^}]*\})?)\s*,\s*\w+\s*\)", r"\1", text)
    text = re.sub(r"label_values\(\s*\w+\s*\)", " ", text)
    text = re.sub(r"\b(query_result|metrics)\((.*)\)", r"\2", text)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", text)          # string literals
    text = re.sub(r"'(?:[^'\\]|\\.)*'", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)                   # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                  # ranges, subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)                 # Grafana variables
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("("):                             # a function or aggregation
            continue
        if word.lower() in KEYWORDS:
            continue
        # A number's exponent or unit (1e3) never starts an identifier here: the regex
        # needs a letter first, and digits before it belong to the number.
        before = text[:match.start()]
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue
        names.add(word)
    return names


dashboard = json.load(open(dashboard_path))
wanted = {}
for promql in queries(dashboard):
    if promql.strip() in ("prometheus", ""):                # the datasource variable
        continue
    for name in metric_names(promql):
        wanted.setdefault(name, promql)

exposed = set()
for line in open(scrape_path):
    line = line.strip()
    if not line:
        continue
    if line.startswith("# TYPE "):
        parts = line.split()
        if len(parts) >= 4:
            family, kind = parts[2], parts[3]
            if kind == "counter":
                exposed.add(family + "_total")
            elif kind in ("histogram", "gaugehistogram"):
                exposed.update(family + s for s in ("_bucket", "_sum", "_count"))
            elif kind == "summary":
                exposed.update((family, family + "_sum", family + "_count"))
            else:
                exposed.add(family)
        continue
    if line.startswith("#"):
        continue
    exposed.add(re.split(r"[{\s]", line, maxsplit=1)[0])

if not wanted:
    print(f"{dashboard_path}: no metric names found in its queries", file=sys.stderr)
    sys.exit(1)
missing = sorted(name for name in wanted if name not in exposed)
for name in sorted(wanted):
    print(f"{'ok     ' if name in exposed else 'MISSING'}  {name}")
print(f"{len(wanted)} metric names in {dashboard_path}, {len(wanted) - len(missing)} exposed, {len(missing)} missing")
for name in missing:
    print(f"missing: {name}  (first used in: {wanted[name]})", file=sys.stderr)
sys.exit(1 if missing else 0)
PY

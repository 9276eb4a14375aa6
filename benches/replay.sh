#!/usr/bin/env bash
# Replay benchmark (issue 8, not run in CI): replay of a raw archive through the engine against
# DuckDB computing metric_1m over the same Parquet files.
#
#   benches/replay.sh                 # SIZE=medium
#   SIZE=large benches/replay.sh      # small | medium | large | a number of minutes of event time
#
# 1. Builds target/release/observebridge when it is missing (or too old to know the job below).
# 2. Writes a raw archive: `observebridge run` on a job with the built-in generator (seed 7,
#    SERVICES x PODS pods, metrics and spans, `pace: fast`, bounded by `duration`) and the views
#    metric_1m + service_call_5m + raw_archive, with a file:// Parquet sink into WORK (epochs of
#    at most 2,000 messages, 2 in flight, as benches/load.sh: memory stays bounded). Per minute
#    of event time that is PODS*SERVICES*6*14 metric points (84,000 at the defaults) and ~42,000
#    spans (20 services), so:
#      small = 5 min (~0.42M points), medium = 40 min (~3.4M), large = 120 min (~10M).
#    Layout (dataflows/src/views/raw_archive.rs, columns in schemas/arrow/raw_<signal>.json):
#      WORK/archive/raw/metrics/date=YYYY-MM-DD/hour=HH/minute=MM/metrics-YYYYMMDDTHHMMZ.parquet
#      WORK/archive/raw/spans/date=YYYY-MM-DD/hour=HH/minute=MM/spans-YYYYMMDDTHHMMZ.parquet
#    An archive already written with the same settings is reused (FRESH=1 writes it again).
# 3. `observebridge replay --job J --from T1 --to T2 --source file://WORK/archive --json`, once
#    with a job holding metric_1m only and once with service_call_5m only, under
#    `/usr/bin/time -v` (peak RSS). The command's stdout is one JSON object with at least
#    records, seconds, records_per_s, objects, bytes. Skipped (with a note) when the binary has
#    no `replay` command or a replay fails; steps 4 and 5 run anyway.
# 4. benches/duckdb_metric_1m.py over WORK/archive/raw/metrics in [T1, T2): DuckDB from PyPI in
#    a virtualenv (DUCKDB_VENV, default target/duckdb-venv), best of 3.
# 5. A table: replay records/s against DuckDB points/s, and their ratio (the bar: replay within
#    3x of DuckDB).
#
# Environment: SIZE (above), SERVICES (20), PODS (50 per service), WORKERS (2), SEED (7),
# WORK (default ${TMPDIR:-/tmp}/observebridge-replay-bench/<settings>), FRESH=1,
# OB_BIN (a binary to use instead of target/release/observebridge; nothing is built then),
# QUANTILES (cont | weighted, see duckdb_metric_1m.py), CHECK=1 (compare DuckDB's rows with the
# engine's metric_1m windows from step 2), DUCKDB_VERSION (2.0.0).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

size=${SIZE:-medium}
case "$size" in
  small) minutes=5 ;;
  medium) minutes=40 ;;
  large) minutes=120 ;;
  *[!0-9]* | '') echo "replay.sh: SIZE must be small, medium, large or a number of minutes (got '$size')" >&2; exit 2 ;;
  *) minutes=$size ;;
esac
[ "$minutes" -ge 1 ] || { echo "replay.sh: SIZE must be at least 1 minute" >&2; exit 2; }
services=${SERVICES:-20}
pods=${PODS:-50}
workers=${WORKERS:-2}
seed=${SEED:-7}
quantiles=${QUANTILES:-cont}
duckdb_version=${DUCKDB_VERSION:-2.0.0}
start=2026-11-20T00:00:00Z
from=$start
to=$(python3 -c "import datetime as d, sys; t = d.datetime(2026, 11, 20, tzinfo=d.timezone.utc) + d.timedelta(minutes=int(sys.argv[1])); print(t.strftime('%Y-%m-%dT%H:%M:%SZ'))" "$minutes")
settings="seed${seed}-svc${services}-pods${pods}-${minutes}m"
work=${WORK:-${TMPDIR:-/tmp}/observebridge-replay-bench/$settings}
archive="$work/archive"
mkdir -p "$work"
say() { printf '\n== %s\n' "$*" >&2; }
show() { printf '$ %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Job specs: the generating run, and one replay job per view.
job_yaml() { # $1 = name, $2 = views block, $3 = parquet url, $4 = epochs block (optional)
  cat <<YAML
name: $1
workers: $workers
lateness: 2m
${4:-}sources:
  - name: estate
    generator:
      seed: $seed
      services: $services
      pods_per_service: $pods
      scrape_interval: 10s
      start: $start
      pace: fast
      duration: ${minutes}m
      signals: [metrics, spans]
views:
$2
sinks:
  parquet:
    url: $3
sql: { enabled: false }
dead_letter:
  file:
    path: $work/dead-letters-$1.jsonl
YAML
}
# The generating run: epochs of at most 2,000 messages (OTLP requests, ~40K records), 2 in flight.
# The replay jobs keep the default epochs: a replay's records are archive rows, not requests.
job_yaml replay-bench-archive $'  metric_1m: {}\n  service_call_5m: {}\n  raw_archive: { signals: [metrics, spans] }' "file://$archive" \
  $'epochs:\n  interval: 100ms\n  max_records: 2000\n  max_inflight: 2\n' > "$work/generate.yaml"
job_yaml replay-bench-metric-1m '  metric_1m: {}' "file://$work/replay-out/metric_1m" > "$work/replay-metric_1m.yaml"
job_yaml replay-bench-service-call-5m '  service_call_5m: {}' "file://$work/replay-out/service_call_5m" > "$work/replay-service_call_5m.yaml"

# ---------------------------------------------------------------------------------------------
say "1. binary"
bin=${OB_BIN:-$ROOT/target/release/observebridge}
build() {
  show "cargo build --release --bin observebridge"
  (cd "$ROOT" && cargo build --release --bin observebridge >&2)
}
if [ -z "${OB_BIN:-}" ] && [ ! -x "$bin" ]; then build; fi
[ -x "$bin" ] || { echo "replay.sh: no binary at $bin" >&2; exit 1; }
if ! "$bin" job validate "$work/generate.yaml" >/dev/null 2>"$work/validate.err"; then
  if [ -z "${OB_BIN:-}" ]; then
    echo "the release binary refuses the job ($(head -c 300 "$work/validate.err")); rebuilding" >&2
    build
    "$bin" job validate "$work/generate.yaml" >&2
  else
    cat "$work/validate.err" >&2; exit 1
  fi
fi
echo "binary: $bin" >&2

# ---------------------------------------------------------------------------------------------
say "2. raw archive: $settings (${minutes} min of event time from $start) -> $archive"
marker="$work/archive.done"
if [ -z "${FRESH:-}" ] && [ -f "$marker" ] && cmp -s "$marker" "$work/generate.yaml"; then
  echo "reusing the archive written before with the same job (FRESH=1 to write it again)" >&2
else
  rm -rf "$archive" "$marker" "$work/replay-out"
  show "$bin run $work/generate.yaml --report --listen 127.0.0.1:0"
  if ! "$bin" run "$work/generate.yaml" --report --listen 127.0.0.1:0 >"$work/generate-report.json" 2>"$work/generate.log"; then
    tail -n 20 "$work/generate.log" >&2
    echo "replay.sh: the generating run failed (log: $work/generate.log)" >&2
    exit 1
  fi
  cp "$work/generate.yaml" "$marker"
fi
python3 - "$work/generate-report.json" "$archive" >&2 <<'PY'
import json, os, sys
report_path, archive = sys.argv[1], sys.argv[2]
try:
    text = open(report_path).read()
    report = json.loads(text[text.index("{"):])
    print(f"generating run: {report.get('records_decoded', 0):,} records decoded in {report.get('seconds', 0):.1f} s "
          f"({report.get('records_per_second', 0):,.0f}/s), peak RSS {report.get('peak_rss_mib', 0):.0f} MiB, "
          f"{report.get('counters', {}).get('raw_archive.objects', '?')} raw objects, {report.get('dead_letters', 0)} dead letters")
except (OSError, ValueError) as e:
    print(f"(no report of the generating run: {e})")
for signal in ("metrics", "spans"):
    root = os.path.join(archive, "raw", signal)
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".parquet")]
    print(f"raw/{signal}: {len(files)} objects, {sum(os.path.getsize(f) for f in files) / 2**20:.1f} MiB")
PY
if ! compgen -G "$archive/raw/metrics/date=*/hour=*/minute=*/*.parquet" >/dev/null; then
  echo "replay.sh: the run wrote no raw/metrics objects under $archive" >&2
  exit 1
fi

# ---------------------------------------------------------------------------------------------
say "3. replay [$from, $to) from file://$archive"
timer=()
if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -v -o); fi
replayed=()
if "$bin" replay --help >/dev/null 2>&1; then
  for view in metric_1m service_call_5m; do
    out="$work/replay-$view.json"
    rm -rf "$out" "$work/replay-$view.time" "$work/replay-out/$view"
    cmd=("$bin" replay --job "$work/replay-$view.yaml" --from "$from" --to "$to" --source "file://$archive" --json)
    show "${cmd[*]}"
    if [ ${#timer[@]} -gt 0 ]; then run=("${timer[@]}" "$work/replay-$view.time" "${cmd[@]}"); else run=("${cmd[@]}"); fi
    rc=0
    "${run[@]}" >"$out" 2>"$work/replay-$view.log" || rc=$?
    if [ "$rc" = 0 ]; then
      replayed+=("$view")
    else
      tail -n 15 "$work/replay-$view.log" >&2
      echo "replay of $view failed (exit $rc; log: $work/replay-$view.log); going on" >&2
      rm -f "$out"
    fi
  done
else
  echo "$bin has no 'replay' command (yet): step 3 skipped" >&2
fi

# ---------------------------------------------------------------------------------------------
say "4. DuckDB metric_1m over raw/metrics"
venv=${DUCKDB_VENV:-$ROOT/target/duckdb-venv}
if [ ! -x "$venv/bin/python" ]; then
  show "python3 -m venv $venv"
  python3 -m venv "$venv"
fi
if [ "$("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)' 2>/dev/null)" != "$duckdb_version" ]; then
  show "$venv/bin/pip install duckdb==$duckdb_version"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==$duckdb_version" >&2
fi
duck=("$venv/bin/python" "$ROOT/benches/duckdb_metric_1m.py" "$archive" --from "$from" --to "$to" --runs 3 --quantiles "$quantiles" --json)
if [ -n "${CHECK:-}" ]; then duck+=(--check); fi
show "${duck[*]}"
"${duck[@]}" >"$work/duckdb.json"

# ---------------------------------------------------------------------------------------------
say "5. side by side"
python3 - "$work" "$(nproc)" "$bin" "${replayed[@]}" <<'PY'
import json, os, re, sys
work, cores, binary, views = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
print(f"binary: {binary}" + ("  (NOT a release build: its figures say nothing about the bar)" if "/debug/" in binary or "debug" in os.path.basename(binary) else ""))

def load(path):
    text = open(path).read().strip()
    try:
        return json.loads(text)
    except ValueError:
        lines = [l for l in text.splitlines() if l.lstrip().startswith("{")]
        return json.loads(lines[-1])

def peak_rss_mib(view):
    try:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(os.path.join(work, f"replay-{view}.time")).read())
        return f"{int(m.group(1)) / 1024:,.0f} MiB" if m else "-"
    except OSError:
        return "-"

def num(x, fmt="{:,.0f}"):
    return fmt.format(x) if isinstance(x, (int, float)) else "-"

rows = []
replay = {}
for view in views:
    try:
        r = load(os.path.join(work, f"replay-{view}.json"))
    except (OSError, ValueError, IndexError) as e:
        print(f"replay {view}: no JSON result ({e})")
        continue
    replay[view] = r
    rate = r.get("records_per_s") or (r["records"] / r["seconds"] if r.get("seconds") else None)
    rows.append((f"replay {view}", num(r.get("records")), num(r.get("seconds"), "{:.2f}"), num(rate), num(r.get("objects")),
                 num(r.get("bytes", 0) / 2**20, "{:,.1f}") if isinstance(r.get("bytes"), (int, float)) else "-", peak_rss_mib(view)))
d = load(os.path.join(work, "duckdb.json"))
rows.append((f"{d['engine']} metric_1m ({d['threads']} threads, {d['quantiles']})", num(d["points"]), num(d["seconds"], "{:.2f}"),
             num(d["points_per_s"]), num(d["objects"]), num(d["bytes"] / 2**20, "{:,.1f}"), "-"))
head = ("run", "records / points", "seconds", "per second", "objects", "MiB read", "peak RSS")
widths = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
line = lambda cells: "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
print(line(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in rows:
    print(line(r))
print()
m = replay.get("metric_1m")
if m:
    rate = m.get("records_per_s") or m["records"] / m["seconds"]
    ratio = d["points_per_s"] / rate if rate else float("inf")
    verdict = "within 3x: bar met" if ratio <= 3 else "slower than 3x: bar not met"
    print(f"metric_1m: replay {rate:,.0f} records/s vs DuckDB {d['points_per_s']:,.0f} points/s on {cores} cores: "
          f"DuckDB is {ratio:.2f}x the replay ({verdict})")
    if m.get("records") != d["points"]:
        print(f"note: replay read {m.get('records')} records, DuckDB {d['points']} points (same window, same objects?)")
else:
    print("metric_1m: no replay figure (step 3 skipped or failed); DuckDB alone above")
if "check" in d:
    print("DuckDB against the engine's metric_1m windows: " + json.dumps(d["check"]))
# The replay's final windows against the generating run's (same names; deterministic bytes).
import hashlib
digest = lambda p: hashlib.md5(open(p, "rb").read()).hexdigest()
for view in replay:
    out_root = os.path.join(work, "replay-out", view)
    written = sorted(os.path.relpath(os.path.join(d, f), out_root) for d, _, fs in os.walk(out_root) for f in fs if f.endswith(".parquet") and f.startswith(view))
    live = [w for w in written if os.path.exists(os.path.join(work, "archive", w))]
    same = [w for w in live if digest(os.path.join(out_root, w)) == digest(os.path.join(work, "archive", w))]
    extra = " (sample_ref is null without raw_archive in the replay job)" if view == "service_call_5m" and len(same) < len(live) else ""
    print(f"replay {view}: {len(written)} windows written, {len(live)} also written by the generating run, {len(same)} of them byte-identical{extra}")
print(f"(files: {work})")
PY

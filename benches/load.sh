#!/usr/bin/env bash
# End-to-end load benchmark: generator (fast, deterministic) -> decode -> views -> Postgres
# (one transaction per frontier) + Parquet (final windows) on this machine's real services.
# Prints the engine's report: records/s, freshness p50/p99 (epoch read -> committed in every
# sink), peak RSS, the views' counters.
# Usage: benches/load.sh [EVENT_HOURS] [SERVICES] [WORKERS] [SIGNALS]
#   SIGNALS: metrics (default: metrics -> metric_1m) or all (metrics, spans and logs -> metric_1m,
#   the span views and the log views).
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${1:-2}
services=${2:-40}
workers=${3:-2}
signals=${4:-metrics}
case "$signals" in
  metrics) signal_list="[metrics]"; views="  metric_1m: {}" ;;
  all) signal_list="[metrics, spans, logs]"; views=$'  metric_1m: {}\n  service_call_5m: {}\n  log_pattern_5m: {}' ;;
  *) echo "SIGNALS must be metrics or all" >&2; exit 2 ;;
esac
eval "$(bash scripts/services.sh)"
cargo build --release --locked --bin observebridge >&2
out=$(mktemp -d)
schema="bench_$(date +%s)"
cat > "$out/job.yaml" <<YAML
name: load-bench
workers: $workers
lateness: 2m
epochs:
  interval: 100ms
  max_records: 2000
  max_inflight: 2
sources:
  - name: estate
    generator:
      seed: 7
      services: $services
      pods_per_service: 5
      scrape_interval: 10s
      start: 2026-11-20T00:00:00Z
      pace: fast
      duration: ${hours}h
      signals: $signal_list
views:
$views
sinks:
  postgres:
    url: $OBSERVEBRIDGE_TEST_PG_URL
    schema: $schema
  parquet:
    url: $out/parquet
dead_letter:
  file:
    path: $out/dead.jsonl
YAML
echo "job: $out/job.yaml" >&2
./target/release/observebridge run "$out/job.yaml" --report

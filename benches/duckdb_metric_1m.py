#!/usr/bin/env python3
"""metric_1m computed by DuckDB over the raw archive's metric points: the reference for
benches/replay.sh (replay of the same archive through the engine).

    duckdb_metric_1m.py ARCHIVE_DIR [--from RFC3339] [--to RFC3339] [--runs 3] [--threads N]
                        [--quantiles cont|weighted] [--check] [--json]

ARCHIVE_DIR is the Parquet sink's directory of the run that wrote the raw archive: the points are
ARCHIVE_DIR/raw/metrics/date=YYYY-MM-DD/hour=HH/minute=MM/metrics-YYYYMMDDTHHMMZ.parquet, one
row per decoded metric point (schemas/arrow/raw_metrics.json): ts, tenant, resource, metric,
series, and either `value` (gauge and sum samples) or `count`, `sum`, `min`, `max`, `buckets`
(histogram points; `buckets` holds one representative value and count per populated bucket).

The query follows metric_1m's definition (dataflows/src/views/metric_1m.rs):
- key: bucket = the event time floored to the minute (UTC), tenant, resource, metric, series;
- a sample is one observation; a histogram point is `count` observations with its `sum`,
  `min`/`max` (else its buckets' extreme representatives, else its mean), and a point with
  count 0 adds nothing (no row for a key that only has those);
- count, sum, avg = sum / count, min, max;
- p50, p95, p99: `--quantiles cont` (default) is DuckDB's quantile_cont over the observation
  values, a histogram point contributing each populated bucket's representative once
  (quantile_cont takes no weights); `--quantiles weighted` is the exact nearest-rank quantile
  with each representative weighted by its bucket count (window sums), which is what
  metric_1m's sketch approximates within 1%.

The result is materialised (CREATE TEMP TABLE ... AS), so every aggregate is computed; each run
reads the Parquet files again (from the OS page cache after the first). Timing: best of --runs.
Points = metric rows read, the unit of replay's `records`. --check compares the result with the
engine's own metric_1m final windows under ARCHIVE_DIR/metric_1m (when the run wrote them).
With --json the last line on stdout is one JSON object; everything else goes to stderr.
"""

import argparse
import datetime as dt
import glob
import json
import os
import sys
import time

try:
    import duckdb
except ImportError:  # pragma: no cover - the bench script installs it into a venv
    sys.exit("duckdb_metric_1m.py: the duckdb module is missing (pip install duckdb)")

KEY = "bucket, tenant, resource, metric, series"


def rfc3339(text):
    """An RFC 3339 instant as a naive UTC datetime (DuckDB compares it with ts in UTC)."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None)


def sql_list(paths):
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def points_sql(files, t_from, t_to):
    where = []
    if t_from is not None:
        where.append(f"ts >= TIMESTAMPTZ '{t_from.isoformat()}+00:00'")
    if t_to is not None:
        where.append(f"ts < TIMESTAMPTZ '{t_to.isoformat()}+00:00'")
    return (
        "SELECT date_trunc('minute', ts) AS bucket, tenant, resource, metric, series, value, count, sum, min, max, buckets "
        f"FROM read_parquet({sql_list(files)}, hive_partitioning = false)"
        + (" WHERE " + " AND ".join(where) if where else "")
    )


def metric_1m_sql(points, quantiles):
    # Representatives of a histogram point's populated buckets.
    reps = "list_transform(list_filter(buckets, lambda b: b.count > 0), lambda b: b.value)"
    stats = f"""
      stats AS (
        SELECT {KEY},
               sum(coalesce(count, 1))::BIGINT AS count,
               sum(coalesce(value, sum)) AS sum,
               min(coalesce(value, min, list_min({reps}), sum / count)) AS min,
               max(coalesce(value, max, list_max({reps}), sum / count)) AS max
        FROM pts
        WHERE value IS NOT NULL OR count > 0
        GROUP BY ALL
      )"""
    # Observations for the quantiles: (value, weight).
    obs = f"""
      obs AS (
        SELECT {KEY}, value AS v, 1::BIGINT AS w FROM pts WHERE value IS NOT NULL
        UNION ALL
        SELECT {KEY}, b.value AS v, b.count AS w
        FROM (SELECT {KEY}, unnest(buckets) AS b FROM pts WHERE value IS NULL AND count > 0)
        WHERE b.count > 0
        UNION ALL
        SELECT {KEY}, sum / count AS v, count AS w FROM pts
        WHERE value IS NULL AND count > 0 AND len(coalesce(buckets, [])) = 0
      )"""
    if quantiles == "cont":
        q = f"""
      q AS (
        SELECT {KEY}, quantile_cont(v, [0.5, 0.95, 0.99]) AS qs FROM obs GROUP BY ALL
      ),
      qq AS (SELECT {KEY}, qs[1] AS p50, qs[2] AS p95, qs[3] AS p99 FROM q)"""
    else:
        rank = lambda p: f"greatest(1, ceil({p} * tw))"  # noqa: E731
        q = f"""
      ranked AS (
        SELECT {KEY}, v,
               sum(w) OVER (PARTITION BY {KEY} ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cw,
               sum(w) OVER (PARTITION BY {KEY}) AS tw
        FROM obs
      ),
      qq AS (
        SELECT {KEY},
               min(v) FILTER (WHERE cw >= {rank(0.5)}) AS p50,
               min(v) FILTER (WHERE cw >= {rank(0.95)}) AS p95,
               min(v) FILTER (WHERE cw >= {rank(0.99)}) AS p99
        FROM ranked GROUP BY ALL
      )"""
    return f"""
      WITH pts AS ({points}),
      {stats},
      {obs},
      {q}
      SELECT {KEY}, s.count, s.sum, s.sum / s.count AS avg, s.min, s.max, qq.p50, qq.p95, qq.p99
      FROM stats s JOIN qq USING ({KEY})"""


def check(con, archive):
    """Compares the result table `m1` with the engine's metric_1m final windows."""
    files = sorted(glob.glob(os.path.join(archive, "metric_1m", "date=*", "hour=*", "*.parquet")))
    if not files:
        return {"engine_rows": 0}
    con.execute(f"CREATE OR REPLACE TEMP TABLE engine AS SELECT * FROM read_parquet({sql_list(files)}, hive_partitioning = false)")
    # The engine writes the windows that are final; compare over its range of buckets.
    row = con.execute(
        f"""
        WITH d AS (SELECT * FROM m1 WHERE bucket BETWEEN (SELECT min(bucket) FROM engine) AND (SELECT max(bucket) FROM engine)),
        j AS (SELECT d.count = e.count AS count_eq, abs(d.avg - e.avg) <= 1e-9 * greatest(1, abs(e.avg)) AS avg_eq,
                     d.max = e.max AS max_eq, d.min = e.min AS min_eq,
                     abs(d.p50 - e.p50) / greatest(abs(d.p50), 1e-12) AS e50,
                     abs(d.p95 - e.p95) / greatest(abs(d.p95), 1e-12) AS e95,
                     abs(d.p99 - e.p99) / greatest(abs(d.p99), 1e-12) AS e99
              FROM d JOIN engine e USING ({KEY}))
        SELECT (SELECT count(*) FROM engine), (SELECT count(*) FROM d), count(*),
               avg(count_eq::INT), avg(avg_eq::INT), avg(min_eq::INT), avg(max_eq::INT),
               quantile_cont(e50, 0.5), max(e50), quantile_cont(e95, 0.5), max(e95), quantile_cont(e99, 0.5), max(e99)
        FROM j"""
    ).fetchone()
    names = ["engine_rows", "duckdb_rows_in_engine_range", "joined_rows", "count_equal", "avg_equal", "min_equal", "max_equal",
             "p50_rel_err_median", "p50_rel_err_max", "p95_rel_err_median", "p95_rel_err_max", "p99_rel_err_median", "p99_rel_err_max"]
    return {n: (round(v, 6) if isinstance(v, float) else v) for n, v in zip(names, row)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archive", help="the Parquet sink's directory (holds raw/metrics/...)")
    ap.add_argument("--from", dest="t_from", type=rfc3339, help="first event time (RFC 3339), inclusive")
    ap.add_argument("--to", dest="t_to", type=rfc3339, help="end of the window (RFC 3339), exclusive")
    ap.add_argument("--runs", type=int, default=3, help="timed runs; the best is reported (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="DuckDB threads (default: every core)")
    ap.add_argument("--quantiles", choices=["cont", "weighted"], default="cont")
    ap.add_argument("--check", action="store_true", help="compare with the engine's metric_1m windows under ARCHIVE/metric_1m")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout (the rest on stderr)")
    args = ap.parse_args()
    log = sys.stderr if args.json else sys.stdout

    files = sorted(glob.glob(os.path.join(args.archive, "raw", "metrics", "date=*", "hour=*", "minute=*", "*.parquet")))
    if not files:
        sys.exit(f"duckdb_metric_1m.py: no raw metrics objects under {args.archive}/raw/metrics")
    size = sum(os.path.getsize(f) for f in files)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {args.threads}")
    points_query = points_sql(files, args.t_from, args.t_to)
    points = con.execute(f"SELECT count(*) FROM ({points_query})").fetchone()[0]
    query = metric_1m_sql(points_query, args.quantiles)

    times = []
    for run in range(args.runs):
        start = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TEMP TABLE m1 AS {query}")
        times.append(time.perf_counter() - start)
        print(f"run {run + 1}: {times[-1]:.3f} s", file=log)
    rows = con.execute("SELECT count(*) FROM m1").fetchone()[0]
    best = min(times)
    result = {
        "engine": f"duckdb {duckdb.__version__}",
        "quantiles": args.quantiles,
        "threads": args.threads,
        "objects": len(files),
        "bytes": size,
        "points": points,
        "rows": rows,
        "seconds": round(best, 4),
        "seconds_all": [round(t, 4) for t in times],
        "points_per_s": round(points / best, 1) if best > 0 else None,
    }
    if args.check:
        result["check"] = check(con, args.archive)
    print(
        f"duckdb {duckdb.__version__} ({args.threads} threads, quantiles {args.quantiles}): {points:,} points in {len(files)} objects "
        f"({size / 2**20:.1f} MiB) -> {rows:,} metric_1m rows; best of {args.runs}: {best:.3f} s, {points / best:,.0f} points/s",
        file=log,
    )
    if args.check:
        print("check against the engine's metric_1m: " + json.dumps(result["check"]), file=log)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Benchmark of ``segments ingest`` against plain DuckDB on the same files.

``make bench-ingest`` (or ``python -m bench.bench_ingest --rows N --days D --files F``):

1. generates a purchase log once (default 3,000,000 orders over 90 days, local Berlin times, amounts in
   cents, a shop's own status words, an unused column) as F CSV files and the same rows as F Parquet files,
   under ``var/bench/ingest-<N>x<D>`` (reused afterwards);
2. for CSV and for Parquet: our ingest (``jobs.ingest.runner.ingest``: load, conversions, every check,
   staging, validation, ``_SUCCESS``, swap) and plain DuckDB reading the same files and writing the same
   Parquet partitioned by day (``COPY (SELECT ...) TO ... (FORMAT parquet, PARTITION_BY ds)``, the same
   conversions, no checks), alternately, in this process, with the same DuckDB threads;
3. checks that both wrote the same rows per day and the same amount total, and prints both times and the
   ratio (target: ours within 2x of DuckDB).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import time
from pathlib import Path

from core.settings import REPO_ROOT

STATUS_WORDS = {"paid": "completed", "shipped": "completed", "storniert": "cancelled", "returned": "refunded"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ZONE = "Europe/Berlin"

MAPPING = """\
[orders]
source = "{kind}"
files = "{kind}/orders-*.{kind}"
timezone = "{zone}"
{time_format}amount_unit = "cents"

[orders.columns]
order_id = "order_ref"
user_id = "customer"
order_ts = "created_at"
amount = "total_cents"
item_count = "items"
discount_amount = "discount_cents"
status = "state"

[orders.status]
{status}
"""


def generate(root: Path, rows: int, days: int, files: int, end_date: str) -> None:
    """The purchase log as ``files`` CSV and ``files`` Parquet files (consecutive day ranges), and the mappings."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    start = dt.datetime.fromisoformat(end_date) - dt.timedelta(days=days - 1)
    # Orders spread evenly over the days, sorted by time (as exports are), as local wall-clock times.
    seconds = np.sort(rng.integers(0, days * 86_400, rows))
    local = pa.array(np.datetime64(start, "us") + seconds.astype("timedelta64[s]"), pa.timestamp("us"))
    items = rng.integers(1, 6, rows)
    total = (items * rng.lognormal(3.2, 0.6, rows) * 100).round().astype("int64")
    table = pa.table({
        "order_ref": pa.array([f"o{i:09d}" for i in range(rows)]),
        "customer": pa.array([f"c{u:07d}" for u in rng.integers(0, rows // 15 + 1, rows)]),
        "created_at": local,
        "total_cents": pa.array(total),
        "discount_cents": pa.array((total * rng.choice([0, 0, 0, 0.1, 0.25], rows)).round().astype("int64")),
        "items": pa.array(items.astype("int32")),
        "state": pa.array(rng.choice(list(STATUS_WORDS), rows, p=[0.6, 0.34, 0.04, 0.02])),
        "channel": pa.array(rng.choice(["web", "app", "store"], rows)),
    })
    bounds = np.linspace(0, rows, files + 1).astype(int)
    for kind in ("csv", "parquet"):
        (root / kind).mkdir(parents=True, exist_ok=True)
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        part = table.slice(lo, hi - lo)
        pq.write_table(part, root / "parquet" / f"orders-{i:03d}.parquet")
        whole_seconds = part.column("created_at").cast(pa.timestamp("s"))  # Arrow's %S prints fractions
        text = part.set_column(2, "created_at", pc.strftime(whole_seconds, format=TIME_FORMAT))
        pacsv.write_csv(text, root / "csv" / f"orders-{i:03d}.csv")
    status = "\n".join(f'{word} = "{status}"' for word, status in STATUS_WORDS.items())
    for kind in ("csv", "parquet"):
        time_format = f'timestamp_format = "{TIME_FORMAT}"\n' if kind == "csv" else ""
        (root / f"{kind}.toml").write_text(MAPPING.format(kind=kind, zone=ZONE, time_format=time_format,
                                                          status=status))


def duckdb_copy(root: Path, kind: str, out: Path) -> None:
    """Plain DuckDB: read the files, convert the same way, write Parquet partitioned by day."""
    import duckdb

    shutil.rmtree(out, ignore_errors=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    files = str(root / kind / f"orders-*.{kind}")
    reader = f"read_csv('{files}')" if kind == "csv" else f"read_parquet('{files}')"
    status = " ".join(f"WHEN '{w}' THEN '{s}'" for w, s in STATUS_WORDS.items())
    con.execute(f"""
        COPY (
            SELECT order_ref AS order_id, customer AS user_id, order_ts, total_cents / 100 AS amount,
                   CAST(items AS INTEGER) AS item_count, discount_cents / 100 AS discount_amount,
                   CASE state {status} END AS status, CAST(order_ts AS DATE) AS ds
            FROM (SELECT *, timezone('{ZONE}', created_at) AS order_ts FROM {reader})
        ) TO '{out}' (FORMAT parquet, PARTITION_BY (ds), COMPRESSION snappy)""")
    con.close()


def ours(root: Path, kind: str) -> None:
    from jobs.ingest.runner import ingest

    ingest(root / f"{kind}.toml", progress=False)


def written(directory: Path) -> tuple[dict[str, int], float]:
    """Rows per ds and the amount total of a partitioned Parquet directory."""
    import duckdb

    con = duckdb.connect()
    rows = con.execute(f"SELECT ds, count(*), sum(amount) FROM read_parquet('{directory}/ds=*/*.parquet', "
                       "hive_partitioning = true, hive_types = {'ds': VARCHAR}) GROUP BY ds").fetchall()
    return {ds: n for ds, n, _ in rows}, round(sum(total for _, _, total in rows), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--end-date", default="2026-06-30")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per engine and format (median counts)")
    parser.add_argument("--home", default=None, help="bench root (default var/bench/ingest-<rows>x<days>)")
    args = parser.parse_args(argv)
    root = Path(args.home or REPO_ROOT / "var" / "bench" / f"ingest-{args.rows}x{args.days}").resolve()
    os.environ["SEGMENTS_HOME"] = str(root / "platform")
    os.environ.pop("SEGMENTS_WAREHOUSE", None)
    wanted = {"rows": args.rows, "days": args.days, "files": args.files, "end_date": args.end_date}
    marker = root / "bench-input.json"
    if not marker.exists() or json.loads(marker.read_text()) != wanted:
        print(f"generating {args.rows:,} orders x {args.days} days into {root} ...", flush=True)
        shutil.rmtree(root, ignore_errors=True)
        started = time.monotonic()
        generate(root, args.rows, args.days, args.files, args.end_date)
        marker.write_text(json.dumps(wanted))
        print(f"  done ({time.monotonic() - started:.0f}s)", flush=True)

    from core import warehouse

    results = {}
    for kind in ("csv", "parquet"):
        size = sum(f.stat().st_size for f in (root / kind).iterdir()) / 2**20
        times: dict[str, list[float]] = {"ours": [], "duckdb": []}
        cpu: dict[str, list[float]] = {"ours": [], "duckdb": []}  # this process's CPU: DuckDB's threads
        for _ in range(args.repeat):  # alternately, so that a slower spell of the VM hits both
            for engine, run in (("ours", lambda: ours(root, kind)),
                                ("duckdb", lambda: duckdb_copy(root, kind, root / "duckdb_out"))):
                started, cpu_started = time.monotonic(), time.process_time()
                run()
                times[engine].append(time.monotonic() - started)
                cpu[engine].append(time.process_time() - cpu_started)
        ours_days, ours_total = written(Path(warehouse.table_path("raw.orders")))
        duck_days, duck_total = written(root / "duckdb_out")
        if ours_days != duck_days or abs(ours_total - duck_total) > 0.01 * len(ours_days):
            raise SystemExit(f"FAILED ({kind}): the two wrote different rows: {sum(ours_days.values())} rows, "
                             f"total {ours_total} against {sum(duck_days.values())}, {duck_total}")
        ours_s, duck_s = statistics.median(times["ours"]), statistics.median(times["duckdb"])
        ours_cpu, duck_cpu = statistics.median(cpu["ours"]), statistics.median(cpu["duckdb"])
        results[kind] = {"rows": sum(ours_days.values()), "days": len(ours_days), "files": args.files,
                         "input_mb": round(size), "ours_s": round(ours_s, 2), "duckdb_s": round(duck_s, 2),
                         "ratio": round(ours_s / duck_s, 2), "ours_cpu_s": round(ours_cpu, 2),
                         "duckdb_cpu_s": round(duck_cpu, 2), "cpu_ratio": round(ours_cpu / duck_cpu, 2),
                         "ours_runs": [round(t, 2) for t in times["ours"]],
                         "duckdb_runs": [round(t, 2) for t in times["duckdb"]], "load_after": os.getloadavg()[0]}
    print(f"\n{'input':<9}{'rows':>11}{'files':>6}{'MB':>5}{'days':>5}{'ingest s':>10}{'DuckDB s':>10}{'ratio':>7}"
          f"{'ingest CPU s':>14}{'DuckDB CPU s':>14}{'ratio':>7}")
    for kind, r in results.items():
        print(f"{kind:<9}{r['rows']:>11,}{r['files']:>6}{r['input_mb']:>5}{r['days']:>5}{r['ours_s']:>10.2f}"
              f"{r['duckdb_s']:>10.2f}{r['ratio']:>7.2f}{r['ours_cpu_s']:>14.2f}{r['duckdb_cpu_s']:>14.2f}"
              f"{r['cpu_ratio']:>7.2f}")
    print(f"\nmedians of {args.repeat} runs each, alternating; ingest = segments ingest without the CLI (load, "
          "checks, staging, validation, _SUCCESS, swap); DuckDB = one COPY ... PARTITION_BY with the same "
          "conversions and no checks; CPU s: this process (DuckDB's threads); target: ratio <= 2. "
          f"1-min load average now: {os.getloadavg()[0]:.1f} (above the core count: something else ran)")
    (root / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

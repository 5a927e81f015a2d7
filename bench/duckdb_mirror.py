"""DuckDB SQL that computes exactly what jobs.cleaning + jobs.features.user_daily compute.

Kept next to the benchmark, not in jobs/: it is the reference the Spark job is timed and checked
against. When the Spark transforms change, this file must change with them (the benchmark's sample
comparison fails loudly until it does).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from core.tables import EVENT_TYPES, ORDER_STATUSES, UNKNOWN

# The columns both engines must agree on. ``device`` (a mode, ties broken arbitrarily) is left out.
INT_COLUMNS = ("sessions", "views", "searches", "add_to_carts", "remove_from_carts", "purchases",
               "distinct_products", "distinct_categories", "orders")
FLOAT_COLUMNS = ("dwell_seconds", "revenue", "discount_amount")
CORE_COLUMNS = INT_COLUMNS + FLOAT_COLUMNS
FLOAT_TOLERANCE = 1e-6  # relative: the engines add doubles in different orders


def _files(table_dir: Path, dates: list[str]) -> list[str]:
    return [str(table_dir / f"ds={d}" / "*.parquet") for d in dates]


def _scan(table_dir: Path, dates: list[str]) -> str:
    files = ", ".join(f"'{f}'" for f in _files(table_dir, dates))
    return f"read_parquet([{files}], hive_partitioning = true, hive_types = {{'ds': VARCHAR}})"


def _sql_list(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _not_any(conditions: list[str]) -> str:
    # Spark's F.when(cond) treats a NULL condition as false: coalesce so SQL's WHERE does the same.
    return " AND ".join(f"NOT coalesce({c}, false)" for c in conditions)


def cleaned_sql(table_dir: Path, read_partitions: list[str], build_days: list[str], key: str, timestamp: str,
                required: list[str], quarantine: list[str], impute_unknown: list[str],
                caps: dict[str, float], late_days: int) -> str:
    """jobs.cleaning.clean for one raw table: drop, quarantine, impute, winsorise, deduplicate, true day."""
    raw = f"SELECT *, CAST(ds AS DATE) AS _raw_day, CAST({timestamp} AS DATE) AS _true_day FROM {_scan(table_dir, read_partitions)}"
    rules = [q.replace("{late_days}", str(late_days)) for q in quarantine]
    replace = [f"coalesce({c}, '{UNKNOWN}') AS {c}" for c in impute_unknown]
    # Capped only above the cap: a NULL stays NULL (least() would skip it and return the cap).
    replace += [f"CAST(CASE WHEN {c} > {cap!r} THEN {cap!r} ELSE {c} END AS "
                f"{'INTEGER' if c == 'quantity' else 'DOUBLE'}) AS {c}"
                for c, cap in caps.items()]
    star = f"* REPLACE ({', '.join(replace)})" if replace else "*"
    usable = (f"SELECT {star} FROM ({raw}) WHERE "
              f"{' AND '.join(f'{c} IS NOT NULL' for c in required)} AND {_not_any(rules)}")
    return f"""
        SELECT * EXCLUDE (_raw_day, _true_day, ds), strftime(_true_day, '%Y-%m-%d') AS ds FROM (
            SELECT DISTINCT ON ({key}) * FROM ({usable}) u WHERE {key} IS NOT NULL
            UNION ALL
            SELECT DISTINCT * FROM ({usable}) u WHERE {key} IS NULL
        ) WHERE strftime(_true_day, '%Y-%m-%d') IN ({_sql_list(build_days)})"""


def user_daily_sql(raw_dir: Path, read_partitions: list[str], build_days: list[str], caps: dict[str, float],
                   late_days: int) -> str:
    """user_daily for the true days ``build_days`` from the raw partitions ``read_partitions``."""
    future, late = "_true_day > _raw_day", "datediff('day', _true_day, _raw_day) > {late_days}"
    events = cleaned_sql(
        raw_dir / "events", read_partitions, build_days, "event_id", "event_ts", ["user_id", "event_ts"],
        [f"event_type IS NULL OR event_type NOT IN ({_sql_list(EVENT_TYPES)})", "price < 0", "quantity < 1",
         "dwell_seconds < 0", future, late],
        ["category", "device"], {c: v for c, v in caps.items() if c in ("price", "quantity", "dwell_seconds")},
        late_days)
    orders = cleaned_sql(
        raw_dir / "orders", read_partitions, build_days, "order_id", "order_ts", ["order_id", "user_id", "order_ts"],
        [f"status IS NULL OR status NOT IN ({_sql_list(ORDER_STATUSES)})", "amount < 0 OR discount_amount < 0",
         "item_count < 1", future, late],
        [], {}, late_days)
    return f"""
    WITH events AS ({events}),
    orders AS ({orders}),
    activity AS (
        SELECT user_id, ds,
               count(DISTINCT session_id) AS sessions,
               count(*) FILTER (event_type = 'view') AS views,
               count(*) FILTER (event_type = 'search') AS searches,
               count(*) FILTER (event_type = 'add_to_cart') AS add_to_carts,
               count(*) FILTER (event_type = 'remove_from_cart') AS remove_from_carts,
               count(*) FILTER (event_type = 'purchase') AS purchases,
               count(DISTINCT product_id) AS distinct_products,
               count(DISTINCT category) AS distinct_categories,
               coalesce(sum(dwell_seconds), 0.0) AS dwell_seconds,
               mode(device) AS device
        FROM events GROUP BY user_id, ds
    ),
    money AS (
        SELECT user_id, ds,
               count(*) FILTER (status = 'completed') AS orders,
               coalesce(sum(amount) FILTER (status = 'completed'), 0.0) AS revenue,
               coalesce(sum(discount_amount) FILTER (status = 'completed'), 0.0) AS discount_amount
        FROM orders GROUP BY user_id, ds
    )
    SELECT user_id,
           {", ".join(f"coalesce({c}, 0)::BIGINT AS {c}" for c in INT_COLUMNS)},
           {", ".join(f"coalesce({c}, 0.0) AS {c}" for c in FLOAT_COLUMNS)},
           device, ds
    FROM activity FULL OUTER JOIN money USING (user_id, ds)
    """


def connect(threads: int, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    if temp_dir is not None:  # DuckDB spills GBs at 200k users; default is .tmp/ in the working directory
        temp_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{temp_dir}'")
    con.execute("SET preserve_insertion_order = false")  # as Spark: no order promised
    con.execute("SET TimeZone = 'UTC'")  # the true day of a timestamp is its UTC date, as in jobs.session
    return con


def write_user_daily(con: duckdb.DuckDBPyConnection, sql: str, out_dir: Path) -> int:
    """Run the aggregation and write it as Parquet partitioned by ds (the same work Spark does)."""
    con.execute(f"COPY ({sql}) TO '{out_dir}' (FORMAT parquet, PARTITION_BY (ds), OVERWRITE_OR_IGNORE true)")
    return con.execute(f"SELECT count(*) FROM read_parquet('{out_dir}/*/*.parquet')").fetchone()[0]


def sample_users(con: duckdb.DuckDBPyConnection, users_dir: Path, ds: str, n: int) -> list[str]:
    """n users of the ds snapshot, picked by a stable hash (the same users on every run)."""
    rows = con.execute(
        f"SELECT user_id FROM read_parquet('{users_dir}/ds={ds}/*.parquet') ORDER BY md5(user_id) LIMIT {n}"
    ).fetchall()
    return [r[0] for r in rows]


def compare(con: duckdb.DuckDBPyConnection, spark_dir: Path, duck_dir: Path, dates: list[str],
            users: list[str]) -> tuple[int, list[str]]:
    """Rows compared and the mismatches (one line each) between the two user_daily outputs."""
    con.execute("CREATE OR REPLACE TEMP TABLE sample_users AS SELECT unnest(?) AS user_id", [users])
    con.execute("CREATE OR REPLACE TEMP TABLE sample_dates AS SELECT unnest(?) AS ds", [dates])

    def side(root: Path) -> str:
        files = ", ".join(f"'{root}/ds={d}/*.parquet'" for d in dates)
        return (f"SELECT * FROM read_parquet([{files}], hive_partitioning = true, "
                f"hive_types = {{'ds': VARCHAR}}, union_by_name = true) "
                f"WHERE user_id IN (SELECT user_id FROM sample_users)")

    checks = [f"s.{c} IS DISTINCT FROM d.{c}" for c in INT_COLUMNS] + [
        f"(abs(s.{c} - d.{c}) > {FLOAT_TOLERANCE} * greatest(1.0, abs(d.{c})) OR (s.{c} IS NULL) <> (d.{c} IS NULL))"
        for c in FLOAT_COLUMNS
    ]
    rows = con.execute(f"""
        SELECT coalesce(s.user_id, d.user_id) AS user_id, coalesce(s.ds, d.ds) AS ds,
               s.user_id IS NULL AS only_duckdb, d.user_id IS NULL AS only_spark,
               {", ".join(f"s.{c} AS s_{c}, d.{c} AS d_{c}" for c in CORE_COLUMNS)}
        FROM ({side(spark_dir)}) s FULL OUTER JOIN ({side(duck_dir)}) d USING (user_id, ds)
        WHERE s.user_id IS NULL OR d.user_id IS NULL OR {" OR ".join(checks)}
        ORDER BY 1, 2
    """).fetchall()
    compared = con.execute(f"SELECT count(*) FROM ({side(duck_dir)})").fetchone()[0]
    mismatches = []
    for row in rows:
        user, ds, only_duck, only_spark, *values = row
        if only_duck or only_spark:
            mismatches.append(f"{user} {ds}: row only in {'DuckDB' if only_duck else 'Spark'}")
            continue
        diffs = [f"{c} spark={values[2 * i]} duckdb={values[2 * i + 1]}" for i, c in enumerate(CORE_COLUMNS)
                 if values[2 * i] != values[2 * i + 1]]
        mismatches.append(f"{user} {ds}: " + "; ".join(diffs))
    return compared, mismatches

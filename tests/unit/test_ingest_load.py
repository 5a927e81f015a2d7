"""jobs/ingest: the conversion to the contract (UTC, units, status, derived keys, absent columns) on tiny
hand-written files, ingested into a temporary warehouse with DuckDB (no Spark), and the dry run's profile.

The helpers here are shared by the other ingest tests.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from core import warehouse
from jobs.ingest.errors import IngestError
from jobs.ingest.runner import ingest

UTC = dt.timezone.utc

ORDERS = """
[orders]
source = "{kind}"
files = "{files}"
{options}
absent = [{absent}]

[orders.columns]
order_id = "id"
user_id = "customer"
order_ts = "created"
amount = "total"
{columns}
"""

USERS = """
[users]
source = "csv"
files = "users.csv"
absent = ["birth_year", "gender", "occupation", "city_tier"]
[users.columns]
user_id = "id"
signup_ts = "signed_up"
"""


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def orders_mapping(folder: Path, *, kind: str = "csv", files: str = "orders*.csv", options: str = "",
                   absent: str = '"item_count", "discount_amount", "status"', columns: str = "",
                   extra: str = "") -> Path:
    """A raw.orders mapping (id, customer, created, total; the rest absent unless changed) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mapping.toml"
    path.write_text(ORDERS.format(kind=kind, files=files, options=options, absent=absent, columns=columns) + extra)
    return path


def run(mapping: Path, **options) -> tuple[list, list[str]]:
    """Ingest quietly; return the results and the lines it printed (the dry run's profile)."""
    lines: list[str] = []
    return ingest(mapping, progress=False, echo=lines.append, **options), lines


def rows_of(name: str, ds: str) -> list[dict]:
    return sorted(warehouse.read_arrow(name, ds).to_pylist(), key=lambda r: str(r[warehouse.table(name).key[0]]))


def test_local_times_become_utc_and_pick_the_utc_day(platform_home, tmp_path):
    write_csv(tmp_path / "orders.csv", "id,customer,created,total,state", [
        "1,u1,01.03.2026 00:30,1999,paid",  # winter, UTC+1: 2026-02-28 23:30 UTC
        "2,u2,15.07.2026 01:30,500,storno",  # summer, UTC+2: 2026-07-14 23:30 UTC
        "3,u1,15.07.2026 12:00,12000,paid",  # 10:00 UTC, same day
    ])
    mapping = orders_mapping(tmp_path, options='timestamp_format = "%d.%m.%Y %H:%M"\ntimezone = "Europe/Berlin"\n'
                             'amount_unit = "cents"', absent='"item_count", "discount_amount"',
                             columns='status = "state"', extra='[orders.status]\npaid = "completed"\n'
                             'storno = "cancelled"\n')
    results, _ = run(mapping)
    assert {d: n for d, n in results[0].day_rows.items() if n} == {"2026-02-28": 1, "2026-07-14": 1, "2026-07-15": 1}
    # The days between got empty partitions: complete, nothing happened (not missing).
    assert len(warehouse.partitions("raw.orders")) == (dt.date(2026, 7, 15) - dt.date(2026, 2, 28)).days + 1
    assert warehouse.partition_rows("raw.orders", "2026-05-01") == 0
    first, = rows_of("raw.orders", "2026-02-28")
    assert first == {"order_id": "1", "user_id": "u1", "order_ts": dt.datetime(2026, 2, 28, 23, 30, tzinfo=UTC),
                     "amount": 19.99, "item_count": None, "discount_amount": None, "status": "completed"}
    second, = rows_of("raw.orders", "2026-07-14")
    assert (second["order_ts"], second["amount"], second["status"]) == (
        dt.datetime(2026, 7, 14, 23, 30, tzinfo=UTC), 5.0, "cancelled")


def test_iso_timestamps_keep_their_offset_and_naive_ones_take_the_mapping_zone(platform_home, tmp_path):
    write_csv(tmp_path / "orders.csv", "id,customer,created,total", [
        "1,u1,2026-03-01T10:00:00+05:00,1.5",  # the offset wins: 05:00 UTC
        "2,u1,2026-03-01 10:00:00,2.5",  # New York, winter (UTC-5): 15:00 UTC
        "3,u1,2026-03-01T10:00:00Z,3.5",  # UTC
        "4,u1,2026-03-01,4.5",  # a date: local midnight, 05:00 UTC
    ])
    run(orders_mapping(tmp_path, options='timezone = "America/New_York"'))
    stamps = {r["order_id"]: r["order_ts"].hour for r in rows_of("raw.orders", "2026-03-01")}
    assert stamps == {"1": 5, "2": 15, "3": 10, "4": 5}


def test_parquet_keeps_its_types_naive_timestamps_take_the_zone_and_numbers_can_be_epochs(platform_home, tmp_path):
    pq.write_table(pa.table({
        "id": pa.array([1, 2], pa.int64()),  # an integer id becomes a string key
        "customer": ["u1", "u2"],
        "created": pa.array([dt.datetime(2026, 3, 1, 8, 0), dt.datetime(2026, 3, 2, 8, 0)], pa.timestamp("ms")),
        "total": pa.array([10, 20], pa.int64()),
        "n": pa.array([3, 4], pa.int64()),  # int64 into an int32 column
        "paid_at": pa.array([1772352000000, None], pa.int64()),  # epoch milliseconds
    }), tmp_path / "orders.parquet")
    mapping = orders_mapping(tmp_path, kind="parquet", files="*.parquet", options='timezone = "Asia/Tokyo"',
                             absent='"discount_amount", "status"', columns='item_count = "n"')
    run(mapping)
    assert warehouse.partitions("raw.orders") == ["2026-02-28", "2026-03-01"]  # 08:00 in Tokyo is 23:00 UTC
    row, = rows_of("raw.orders", "2026-02-28")
    assert (row["order_id"], row["order_ts"], row["item_count"]) == ("1", dt.datetime(2026, 2, 28, 23, tzinfo=UTC), 3)
    assert warehouse.read_arrow("raw.orders", "2026-02-28").schema == warehouse.table("raw.orders").arrow_schema()
    # The same file read with the epoch column as the order time.
    mapping.write_text(mapping.read_text().replace('order_ts = "created"', 'order_ts = "paid_at"')
                       .replace('timezone = "Asia/Tokyo"', 'timestamp_format = "epoch_ms"'))
    with pytest.raises(IngestError, match="order_ts is empty in 1 row of orders.parquet"):
        run(mapping)  # the null epoch: a row without a day


def test_absent_columns_are_null_status_completed_and_keys_derived_from_the_row(platform_home, tmp_path):
    header = "customer,created,total,Unit Price,qty"
    rows = ["u1,2026-03-01 10:00:00,12.5,2.5,5", "u2,2026-03-01 11:00:00,3.0,1.5,2",
            "u1,2026-03-01 10:00:00,12.5,2.5,5"]  # the first row again: the same key (cleaning keeps one)
    write_csv(tmp_path / "orders.csv", header, rows)
    typed = pacsv.read_csv(tmp_path / "orders.csv")  # created: timestamp, total: double, qty: int64
    pq.write_table(typed.slice(0, 2), tmp_path / "orders.parquet")
    mapping = orders_mapping(tmp_path, absent='"order_id", "status"',
                             columns='item_count = "qty"\ndiscount_amount = { sql = \'"Unit Price"::DOUBLE * 0\' }')
    mapping.write_text(mapping.read_text().replace('order_id = "id"\n', ""))
    run(mapping)
    stored = warehouse.read_arrow("raw.orders", "2026-03-01").to_pylist()
    assert [r["status"] for r in stored] == ["completed"] * 3
    assert {r["discount_amount"] for r in stored} == {0.0}
    keys = [r["order_id"] for r in stored]
    assert len(keys[0]) == 32 and keys[0] == keys[2] != keys[1]  # md5 hex; identical rows, identical keys
    # The same rows from Parquet (typed columns, not text) get the same keys: the key hashes converted values.
    parquet = orders_mapping(tmp_path / "p", kind="parquet", files="../orders.parquet", absent='"order_id", "status"',
                             columns='item_count = "qty"\ndiscount_amount = { sql = \'"Unit Price"::DOUBLE * 0\' }')
    parquet.write_text(parquet.read_text().replace('order_id = "id"\n', ""))
    run(parquet)
    again = [r["order_id"] for r in warehouse.read_arrow("raw.orders", "2026-03-01").to_pylist()]
    assert sorted(again) == sorted(keys[:2])


def test_every_file_must_have_the_mapped_columns(platform_home, tmp_path):
    write_csv(tmp_path / "orders-1.csv", "id,customer,created,total", ["1,u1,2026-03-01 10:00:00,1.5"])
    write_csv(tmp_path / "orders-2.csv", "id,client,created_at,total,note", ["2,u1,2026-03-01 10:00:00,1.5,x"])
    with pytest.raises(IngestError) as error:
        run(orders_mapping(tmp_path))
    assert str(error.value) == ("raw.orders: orders-2.csv has no column 'customer' (mapped to user_id), 'created' "
                                "(mapped to order_ts); its columns: id, client, created_at, total, note")
    assert not Path(warehouse.table_path("raw.orders")).exists()


def test_files_with_their_columns_in_another_order_are_matched_by_name(platform_home, tmp_path):
    write_csv(tmp_path / "orders-1.csv", "id,customer,created,total", ["1,u1,2026-03-01 10:00:00,1.5"])
    write_csv(tmp_path / "orders-2.csv", "total;created;customer;id", ["2.5;2026-03-01 11:00:00;u2;2"])
    with pytest.raises(IngestError, match="orders-2.csv has no column 'id'"):
        run(orders_mapping(tmp_path))  # the dialect of the first file is the dialect of every file
    write_csv(tmp_path / "orders-2.csv", "total,created,customer,id", ["2.5,2026-03-01 11:00:00,u2,2"])
    run(orders_mapping(tmp_path))
    assert [(r["order_id"], r["user_id"], r["amount"]) for r in rows_of("raw.orders", "2026-03-01")] == [
        ("1", "u1", 1.5), ("2", "u2", 2.5)]


def test_the_dry_run_profiles_the_converted_rows_and_writes_nothing(platform_home, tmp_path):
    days = [f"2026-03-0{d}" for d in (1, 2, 4)]  # 03-03 has no row
    rows = [f"{i},u{i % 3},{day} 12:00:00,{i}.5,{'x' if i % 2 else ''}" for i, day in enumerate(days * 2)]
    write_csv(tmp_path / "orders.csv", "id,customer,created,total,coupon", rows)
    results, lines = run(orders_mapping(tmp_path), dry_run=True)
    assert not Path(warehouse.table_path("raw.orders")).exists()
    assert results[0].day_rows == {"2026-03-01": 2, "2026-03-02": 2, "2026-03-03": 0, "2026-03-04": 2}
    assert not results[0].written
    text = "\n".join(lines)
    assert lines[0] == "raw.orders: 6 rows from 1 csv file"
    assert ("3 days 2026-03-01 .. 2026-03-04; first 2 rows, last 2; per day min 2 (2026-03-01), median 2, "
            "max 2 (2026-03-01); 1 day without rows inside the span (an empty partition)") in text
    amount = next(line for line in lines if line.strip().startswith("amount"))
    assert amount.split() == ["amount", "total", "0", "0.5", "5.5"]  # nulls, min, max
    order_ts = next(line for line in lines if line.strip().startswith("order_ts"))
    assert order_ts.split()[:3] == ["order_ts", "created", "0"] and "2026-03-01 12:00:00+00" in order_ts  # UTC
    assert "status           (absent: 'completed')" in text
    assert "source columns not used: coupon" in text
    assert lines[-1] == "  would write 4 partitions; none exists yet"


LINES = """
[orders]
source = "csv"
files = "$SHOP_EXPORT/lines.csv"
group_by = ["basket"]
absent = ["status"]
[orders.columns]
order_id = "basket"
user_id = {{ sql = "{user}" }}
order_ts = {{ sql = "min(ts)" }}
amount = {{ sql = "sum(price::DOUBLE)" }}
item_count = {{ sql = "count(*)" }}
discount_amount = {{ sql = "sum(disc::DOUBLE)" }}
"""


def test_order_lines_are_grouped_into_orders(platform_home, tmp_path, monkeypatch):
    # Two baskets: b1 has two lines (3.5 + 1.5, discounts 0.5 + 0), b2 one. One order per basket, stamped
    # with its first line; the files' folder comes from an environment variable.
    write_csv(tmp_path / "export" / "lines.csv", "basket,household,ts,price,disc", [
        "b1,h1,2026-03-01T10:00:00Z,3.5,0.5", "b1,h1,2026-03-01T10:01:00Z,1.5,0", "b2,h2,2026-03-02T09:00:00Z,2,0"])
    (tmp_path / "mapping.toml").write_text(LINES.format(user="any_value(household)"))
    monkeypatch.setenv("SHOP_EXPORT", str(tmp_path / "export"))
    results, _ = run(tmp_path / "mapping.toml")
    assert results[0].day_rows == {"2026-03-01": 1, "2026-03-02": 1}
    b1, = rows_of("raw.orders", "2026-03-01")
    assert b1 == {"order_id": "b1", "user_id": "h1", "order_ts": dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
                  "amount": 5.0, "item_count": 2, "discount_amount": 0.5, "status": "completed"}


def test_grouped_columns_must_be_aggregates_and_variables_set(platform_home, tmp_path, monkeypatch):
    write_csv(tmp_path / "export" / "lines.csv", "basket,household,ts,price,disc", ["b1,h1,2026-03-01T10:00:00Z,1,0"])
    (tmp_path / "mapping.toml").write_text(LINES.format(user="household"))  # neither grouped nor aggregated
    with pytest.raises(IngestError, match="SHOP_EXPORT, which is not set"):
        run(tmp_path / "mapping.toml")
    monkeypatch.setenv("SHOP_EXPORT", str(tmp_path / "export"))
    with pytest.raises(IngestError, match="the mapping of user_id") as failure:
        run(tmp_path / "mapping.toml")
    assert "group_by" in failure.value.hint

"""jobs/ingest/checks.py: bad input stops the ingest before anything is written, with one error naming the
file, the column, the row count and an example value."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import settings, warehouse
from jobs.ingest.checks import shrink_violation
from jobs.ingest.errors import IngestError
from tests.unit.test_ingest_load import orders_mapping, run, write_csv

HEADER = "id,customer,created,total,state"


def orders(first_id: int, n: int, day: str = "2026-03-01", total: str = "{i}.5", state: str = "completed") -> list[str]:
    """n order lines with ids from first_id, at noon of day."""
    return [f"{i},u{i % 7},{day} 12:00:00,{total.format(i=i)},{state}" for i in range(first_id, first_id + n)]


def fails(mapping: Path, **options) -> str:
    """The error of an ingest that must fail, after checking that nothing was written."""
    with pytest.raises(IngestError) as error:
        run(mapping, **options)
    assert not Path(warehouse.table_path("raw.orders")).exists()
    return str(error.value)


def with_status(folder: Path, extra: str = "", options: str = "") -> Path:
    return orders_mapping(folder, absent='"item_count", "discount_amount"', columns='status = "state"',
                          extra=extra, options=options)


def test_unparseable_timestamps_name_the_file_the_column_the_count_and_an_example(platform_home, tmp_path):
    write_csv(tmp_path / "orders-a.csv", HEADER, ["1,u1,01.03.2026 10:00,1.5,paid", "2,u1,31.02.2026 10:00,1.5,paid"])
    write_csv(tmp_path / "orders-b.csv", HEADER, ["3,u1,2026-03-01,1.5,paid", "4,u1,yesterday,1.5,paid"])
    mapping = orders_mapping(tmp_path, options='timestamp_format = "%d.%m.%Y %H:%M"')
    assert fails(mapping) == (
        "raw.orders: order_ts is not a valid timestamp in 1 row of orders-a.csv (and 2 rows in 1 other file) "
        "(source: created, timestamp_format ['%d.%m.%Y %H:%M']), e.g. '31.02.2026 10:00'")


def test_unparseable_numbers_and_missing_times_are_errors_too(platform_home, tmp_path):
    write_csv(tmp_path / "orders.csv", HEADER, ["1,u1,2026-03-01 10:00:00,\"12,50\",paid"])
    assert fails(orders_mapping(tmp_path)) == (
        "raw.orders: amount is not a valid double in 1 row of orders.csv (source: total), e.g. '12,50'")
    write_csv(tmp_path / "orders.csv", HEADER, ["1,u1,,12.5,paid", "2,u1,  ,12.5,paid"])
    assert fails(orders_mapping(tmp_path)) == ("raw.orders: order_ts is empty in 2 rows of orders.csv (source: "
                                               "created): a row without it belongs to no day")


def test_status_values_outside_the_vocabulary_are_named_with_their_counts(platform_home, tmp_path):
    rows = [*orders(1, 3, state="paid"), *orders(4, 2, state="on_hold"), *orders(6, 1, state="lost"),
            "7,u1,2026-03-01 12:00:00,1.5,"]
    write_csv(tmp_path / "orders.csv", HEADER, rows)
    message = fails(with_status(tmp_path, extra='[orders.status]\npaid = "completed"\n'))
    assert message == ("raw.orders: status is outside [orders.status] in 3 rows (source: state): 'on_hold' (2 rows), "
                       "'lost' (1 row); first seen in orders.csv")
    # Mapped, they pass; an empty status stays null (the feature stage quarantines it).
    run(with_status(tmp_path, extra='[orders.status]\npaid = "completed"\non_hold = "completed"\nlost = "cancelled"\n'))
    statuses = [r["status"] for r in warehouse.read_arrow("raw.orders", "2026-03-01").to_pylist()]
    assert statuses == ["completed"] * 5 + ["cancelled", None]


def test_whole_amounts_of_a_hundred_and_more_look_like_cents(platform_home, tmp_path):
    write_csv(tmp_path / "orders.csv", HEADER, orders(1, 25, total="{i}99"))  # 199, 299, ... 2599
    assert fails(orders_mapping(tmp_path)) == (
        'raw.orders: amount (source: total) looks like cents in orders.csv: 100.0% of 25 non-zero values are whole '
        'numbers and their median is about 1,399 (e.g. 199), but amount_unit = "units"')
    run(orders_mapping(tmp_path, options="check_cents = false"))  # the override: whole units really
    assert warehouse.partition_rows("raw.orders", "2026-03-01") == 25


def test_the_cents_heuristic_spares_real_units_and_judges_small_files_together(platform_home, tmp_path):
    write_csv(tmp_path / "orders-1.csv", HEADER, orders(1, 12, total="{i}99"))  # 12 values per file: too few
    write_csv(tmp_path / "orders-2.csv", HEADER, orders(13, 12, total="{i}99"))  # alone, 24 together
    assert "looks like cents in all 2 files: 100.0% of 24" in fails(orders_mapping(tmp_path))
    write_csv(tmp_path / "orders-2.csv", HEADER, orders(13, 12, total="{i}.99"))  # half of them have cents
    run(orders_mapping(tmp_path))
    write_csv(tmp_path / "orders-2.csv", HEADER, orders(13, 12, total="{i}"))  # whole but small: units
    write_csv(tmp_path / "orders-1.csv", HEADER, orders(1, 12, total="{i}"))
    run(orders_mapping(tmp_path))


def test_fractions_of_a_cent_mean_the_source_is_in_units(platform_home, tmp_path):
    write_csv(tmp_path / "orders.csv", HEADER, orders(1, 30, total="{i}.5"))
    assert fails(orders_mapping(tmp_path, options='amount_unit = "cents"')) == (
        'raw.orders: amount (source: total) has fractions of a cent in orders.csv: 100.0% of 30 non-zero values '
        'are not whole (e.g. 1.5), but amount_unit = "cents"')


def test_a_key_in_two_files_names_both_files_and_duplicates_inside_one_file_pass(platform_home, tmp_path):
    write_csv(tmp_path / "orders-1.csv", HEADER, orders(1, 3) + orders(3, 1))  # id 3 twice in one file: raw dirt
    write_csv(tmp_path / "orders-2.csv", HEADER, orders(4, 2))
    results, _ = run(orders_mapping(tmp_path))
    assert results[0].rows == 6
    write_csv(tmp_path / "orders-2.csv", HEADER, orders(2, 3))  # ids 2, 3 again
    message = str(pytest.raises(IngestError, run, orders_mapping(tmp_path)).value)
    assert message == ("raw.orders: 2 order_id values appear in more than one file (source: id), e.g. '2' in "
                       "orders-1.csv and orders-2.csv")


@pytest.mark.parametrize("days, previous, expected", [
    ({"2026-03-01": 200, "2026-03-02": 101}, None, None),  # 49.5% fewer: allowed
    ({"2026-03-01": 200, "2026-03-02": 99}, None, ("2026-03-02", 99, "2026-03-01", 200)),
    ({"2026-03-01": 200, "2026-03-03": 200}, None, ("2026-03-02", 0, "2026-03-01", 200)),  # a day without rows
    ({"2026-03-01": 50, "2026-03-02": 1}, None, None),  # after a small day (< 100 rows): not judged
    ({"2026-03-02": 10}, ("2026-03-01", 300), ("2026-03-02", 10, "2026-03-01", 300)),  # the stored day before
    ({"2026-03-01": 150, "2026-03-02": 500, "2026-03-03": 100}, None, ("2026-03-03", 100, "2026-03-02", 500)),
])
def test_shrink_is_judged_day_over_day(days, previous, expected):
    assert shrink_violation(days, previous, max_shrink=0.5, min_rows=100) == expected
    assert shrink_violation(days, previous, max_shrink=1.0, min_rows=100) is None  # 1: never


def test_a_day_that_shrank_against_the_stored_day_before_stops_the_ingest(platform_home, tmp_path, monkeypatch):
    write_csv(tmp_path / "orders.csv", HEADER, orders(1, 200, day="2026-03-01"))
    run(orders_mapping(tmp_path))
    write_csv(tmp_path / "orders.csv", HEADER, orders(1000, 40, day="2026-03-02"))
    with pytest.raises(IngestError) as error:
        run(orders_mapping(tmp_path))
    assert str(error.value) == ("raw.orders: ds=2026-03-02 has 40 rows, 80% fewer than the 200 of 2026-03-01 "
                                "(stored); more than the allowed 50% (files: orders.csv)")
    assert warehouse.partitions("raw.orders") == ["2026-03-01"]
    run(orders_mapping(tmp_path), max_shrink=0.9)  # the CLI's --max-shrink
    monkeypatch.setenv("SEGMENTS_INGEST_MAX_SHRINK", "0.85")  # or the setting
    assert settings.load().ingest_max_shrink == 0.85
    run(orders_mapping(tmp_path))
    monkeypatch.setenv("SEGMENTS_INGEST_MAX_SHRINK", "50%")
    with pytest.raises(settings.BadSetting, match="SEGMENTS_INGEST_MAX_SHRINK must be a number from 0 to 1"):
        settings.load()


def test_a_malformed_csv_row_stops_the_ingest_instead_of_being_skipped(platform_home, tmp_path):
    # DuckDB's sniffer would take the last line for the header and return no row at all: the dialect and the
    # columns are imposed instead, strictly.
    write_csv(tmp_path / "orders.csv", "id,customer,created,total", [
        "1,u1,2026-03-01 10:00:00,1.5", "2,u2,2026-03-01 10:00:00,1.5,extra,more"])
    assert fails(orders_mapping(tmp_path, options='delimiter = ","')) == (
        "raw.orders: cannot read the source: Invalid Input Error: CSV Error on Line: 3; Original Line: "
        f"2,u2,2026-03-01 10:00:00,1.5,extra,more; Expected Number of Columns: 4 Found: 5 (in {tmp_path}/orders.csv)")

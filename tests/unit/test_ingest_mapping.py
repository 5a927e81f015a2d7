"""jobs/ingest/mapping.py: the TOML mapping file is parsed and every mistake in it is a clear error."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from jobs.ingest.errors import IngestError
from jobs.ingest.mapping import expression_columns, load_mapping, parse_mapping
from tests.unit.test_ingest_load import ORDERS, USERS

FULL = USERS + """  # users first: the tables still come in contract order
[orders]
source = "csv"
files = ["exports/orders-*.csv", "late/*.csv"]
delimiter = ";"
timestamp_format = "%d.%m.%Y %H:%M"
timezone = "Europe/Berlin"
amount_unit = "cents"
absent = ["order_id", "discount_amount"]

[orders.columns]
user_id = "Customer No"
order_ts = "created"
amount = "total"
item_count = { sql = "CAST(qty AS INTEGER) + coalesce(extra::INTEGER, 0)" }
status = "state"

[orders.status]
paid = "completed"
storniert = "cancelled"

"""

ORDERS_MINIMAL = ORDERS.format(kind="parquet", files="o.parquet", options="", columns="",
                               absent='"item_count", "discount_amount", "status"')


def parse(text: str):
    return parse_mapping(tomllib.loads(text), Path("/shop/mapping.toml"))


def test_a_full_mapping_is_parsed_in_contract_order():
    mapping = parse(FULL)
    assert list(mapping.tables) == ["raw.orders", "raw.users"]
    orders = mapping.tables["raw.orders"]
    assert orders.source.kind == "csv" and orders.source.delimiter == ";"
    assert orders.source.files == ("exports/orders-*.csv", "late/*.csv")
    assert orders.source.base_dir == Path("/shop")  # globs are relative to the mapping file
    assert orders.timestamp_formats == ("%d.%m.%Y %H:%M",) and orders.timezone == "Europe/Berlin"
    assert orders.amount_unit == "cents" and orders.check_cents
    assert orders.derived_key and orders.key == "order_id"  # order_id absent: derived
    assert orders.absent == ("order_id", "discount_amount")
    assert list(orders.columns) == ["user_id", "order_ts", "amount", "item_count", "status"]  # contract order
    # A source column is quoted (spaces, capitals); an expression is wrapped and its columns are known.
    assert orders.columns["user_id"].expression == '"Customer No"'
    assert orders.columns["item_count"].references == ("qty", "extra")
    assert orders.referenced() == ["Customer No", "created", "total", "qty", "extra", "state"]
    # The contract's own values need no line; the shop's words are added.
    assert orders.status_values == {"completed": "completed", "cancelled": "cancelled", "refunded": "refunded",
                                    "paid": "completed", "storniert": "cancelled"}
    assert orders.day_column == "order_ts" and orders.money_columns == ("amount",)  # discount_amount is absent
    users = mapping.tables["raw.users"]
    assert users.columns["signup_ts"].source == "signed_up" and users.absent[0] == "birth_year"
    assert users.day_column is None and users.money_columns == () and users.status_values == {}


def test_defaults_are_utc_units_and_iso_timestamps():
    orders = parse(ORDERS_MINIMAL).tables["raw.orders"]
    assert (orders.timezone, orders.amount_unit, orders.timestamp_formats) == ("UTC", "units", ())
    assert orders.status_column is None  # absent: every order is 'completed'


def test_load_mapping_reads_the_file_and_explains_missing_or_broken_files(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(ORDERS_MINIMAL)
    assert load_mapping(path).path == path
    with pytest.raises(IngestError, match="does not exist"):
        load_mapping(tmp_path / "nope.toml")
    path.write_text("[orders\n")
    with pytest.raises(IngestError, match="not valid TOML"):
        load_mapping(path)


@pytest.mark.parametrize("change, message", [
    # unknown section / key / contract column
    (lambda t: t + '\n[customers]\nsource = "csv"\n', r"unknown section\(s\) 'customers'"),
    (lambda t: t.replace('source = "parquet"', 'source = "parquet"\nsheet = 1'), r"unknown key\(s\) 'sheet'"),
    (lambda t: t + 'revenue = "r"\n', r"'revenue' is not a column of raw.orders"),
    (lambda t: t.replace('absent = [', 'absent = ["coupon", '),
     r"absent names 'coupon', not a column of raw.orders"),
    # the contract's rules
    (lambda t: t.replace('amount = "total"\n', ""), r"required column\(s\) 'amount' of raw.orders are not mapped"),
    (lambda t: t.replace('"discount_amount", ', ""), r"'discount_amount' are neither mapped nor absent"),
    (lambda t: t + 'item_count = "n"\n', r"'item_count' is both mapped in columns and listed in absent"),
    # values
    (lambda t: t.replace('source = "parquet"', 'source = "excel"'), "source must be one of csv, parquet"),
    (lambda t: t.replace('source = "parquet"', 'source = "parquet"\ntimezone = "Mars/Olympus"'),
     "unknown time zone 'Mars/Olympus'"),
    (lambda t: t.replace('source = "parquet"', 'source = "parquet"\namount_unit = "euros"'),
     "amount_unit must be units or cents"),
    (lambda t: t.replace('source = "parquet"', 'source = "parquet"\ncheck_cents = "no"'),
     "check_cents must be true or false"),
    (lambda t: t.replace('"status"]', '"status"]\ntimestamp_format = ["%s%z", "%s"]'),
     "must all have an offset"),
    (lambda t: t.replace('"status"]', '"status"]\ntimestamp_format = ["epoch", "%s"]'),
     "cannot be combined"),
    (lambda t: t.replace('files = "o.parquet"', 'files = []'), "files must be a glob or a list"),
    (lambda t: t.replace('files = "o.parquet"', 'files = "o.parquet"\nquery = "SELECT 1"'),
     r"'query' do\(es\) not apply to source = 'parquet'"),
    (lambda t: t.replace('files = "o.parquet"', 'files = "o.parquet"\ndelimiter = ";"'),
     r"'delimiter' do\(es\) not apply to source = 'parquet'"),
    (lambda t: t.replace('"status"]', '"item_count"]').replace('absent = ["item_count", ', 'absent = [')
     + 'status = "s"\n[orders.status]\npaid = "done"\n', r"status values map to completed, cancelled, refunded"),
    (lambda t: t + '[orders.status]\npaid = "completed"\n', "status is absent"),
    (lambda t: t + 'amount_x = { sql = "a FROM b" }\n', "'amount_x' is not a column"),
    (lambda t: t.replace('amount = "total"', 'amount = { sql = "a FROM t" }'), "is not one SQL expression"),
    (lambda t: t.replace('amount = "total"', 'amount = { sql = "a; DROP TABLE t" }'), "is not one SQL expression"),
    (lambda t: t.replace('amount = "total"', 'amount = 3'), "must be a source column name or"),
])
def test_mistakes_in_the_mapping_are_named(change, message):
    with pytest.raises(IngestError, match=message):
        parse(change(ORDERS_MINIMAL))


def test_a_mapping_must_map_something_and_sections_must_be_tables():
    with pytest.raises(IngestError, match="maps no table"):
        parse("")
    with pytest.raises(IngestError, match="must be a section"):
        parse('orders = "x.csv"')


def test_postgres_takes_a_query_and_the_name_of_the_variable_holding_the_dsn_never_the_dsn():
    base = '[users]\nsource = "postgres"\nquery = "SELECT 1 AS id"\n[users.columns]\nuser_id = "id"\n'
    base = base.replace("[users.columns]", 'absent = ["signup_ts", "birth_year", "gender", "occupation", '
                        '"city_tier"]\n[users.columns]')
    with pytest.raises(IngestError, match="dsn_env is missing"):
        parse(base)
    with pytest.raises(IngestError, match="must name an environment variable"):
        parse(base.replace('query =', 'dsn_env = "postgresql://shop:secret@db/shop"\nquery ='))
    with pytest.raises(IngestError, match=r"'files' do\(es\) not apply to source = 'postgres'"):
        parse(base.replace('query =', 'dsn_env = "DSN"\nfiles = "x.csv"\nquery ='))
    users = parse(base.replace('query =', 'dsn_env = "SHOP_DSN"\nquery =')).tables["raw.users"]
    assert users.source.dsn_env == "SHOP_DSN"


def test_the_columns_an_expression_reads_come_from_duckdbs_parse_tree():
    assert expression_columns('price::DOUBLE * "Qty x" + coalesce(bonus, 0)', "t") == ("price", "Qty x", "bonus")
    assert expression_columns("payload.amount / 100", "t") == ("payload",)  # a struct field: its column
    assert expression_columns("'constant'", "t") == ()


def test_the_example_of_the_docs_is_a_valid_mapping():
    import re

    from core.settings import REPO_ROOT

    text = (REPO_ROOT / "docs" / "ingest.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    assert list(parse(example).tables) == ["raw.events", "raw.orders", "raw.users"]

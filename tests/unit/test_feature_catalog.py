"""core/feature_catalog.py: the feature contract, and the files generated from the catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import feature_catalog, tables

REPO = Path(__file__).resolve().parents[2]

# The original contract, written out: trained models read these names in this order, so a new feature
# goes after them and none of them is renamed.
ORIGINAL_NUMERIC = (
    "recency_days", "purchase_recency_days",
    *[f"{measure}_{window}d" for window in (7, 30, 90)
      for measure in ("active_days", "sessions", "views", "add_to_carts", "purchases", "orders", "revenue")],
    "dwell_per_view_30d", "view_to_cart_30d", "cart_to_purchase_30d", "discount_share_90d",
    "avg_order_value_90d", "activity_trend", "spend_trend", "age", "tenure_days",
)


def test_the_original_contract_keeps_its_names_order_and_kinds():
    assert feature_catalog.NUMERIC_FEATURES[:len(ORIGINAL_NUMERIC)] == ORIGINAL_NUMERIC
    # Kinds decide the encoding (scaled, one-hot, sequence): age is a number, its bucket a category.
    kinds = {"age": "numeric", "lifetime_orders": "numeric", "age_bucket": "categorical",
             "device": "categorical", "gender": "categorical", "top_category_90d": "categorical",
             "seq_revenue": "sequence"}
    assert {name: feature_catalog.feature(name).kind for name in kinds} == kinds
    # The sequence keeps its channel order (the LSTM reads them by position).
    assert feature_catalog.SEQUENCE_CHANNELS == ("seq_sessions", "seq_views", "seq_searches",
                                                 "seq_add_to_carts", "seq_purchases", "seq_revenue",
                                                 "seq_dwell_minutes")
    assert [f.name for f in feature_catalog.FEATURES if not f.description] == []
    assert tables.table("features.user_daily").column_names[:14] == [
        "user_id", "sessions", "views", "searches", "add_to_carts", "remove_from_carts", "purchases",
        "distinct_products", "distinct_categories", "dwell_seconds", "orders", "revenue", "discount_amount", "device"]


def test_docs_features_md_is_generated_from_the_catalogue():
    committed = (REPO / "docs" / "features.md").read_text()
    assert committed == feature_catalog.markdown(), (
        "docs/features.md is stale: run `python -m core.feature_catalog > docs/features.md`")


def test_gx_suite_is_generated_from_the_catalogue():
    committed = json.loads((REPO / "expectations" / "features.user_features.json").read_text())
    assert committed == feature_catalog.gx_suite(), (
        "expectations/features.user_features.json is stale: run "
        "`python -m core.feature_catalog --suite > expectations/features.user_features.json`")
    between = {e["kwargs"]["column"]: e["kwargs"] for e in committed["expectations"]
               if e["type"] == "expect_column_values_to_be_between"}
    # Shares are bounded to [0, 1]; counts non-negative; trends may be negative (no range).
    assert between["weekend_share_90d"] == {"column": "weekend_share_90d", "min_value": 0, "max_value": 1}
    assert between["orders_90d"] == {"column": "orders_90d", "min_value": 0}
    assert between["active_days_90d"] == {"column": "active_days_90d", "min_value": 1, "max_value": 90}
    assert "activity_trend" not in between


def test_unknown_feature_names_are_rejected():
    assert feature_catalog.feature("revenue_90d").unit == "currency"
    with pytest.raises(KeyError, match="revenu_90d"):
        feature_catalog.feature("revenu_90d")


def test_each_feature_has_a_source_and_a_shop_has_what_its_tables_give():
    assert all(f.source in feature_catalog.SOURCES for f in feature_catalog.FEATURES)
    purchase_log = {f.name for f in feature_catalog.available(("raw.orders",))}
    # Orders give money and, as activity, recency and lifetime state; never views, rates or attributes.
    assert {"orders_90d", "revenue_90d", "recency_days", "lifetime_orders", "seq_revenue"} <= purchase_log
    assert not {"views_30d", "view_to_cart_30d", "device", "age", "seq_views"} & purchase_log
    clickstream = {f.name for f in feature_catalog.available(("raw.events",))}
    assert "recency_days" in clickstream and "revenue_90d" not in clickstream  # purchase events, no money
    assert feature_catalog.families(feature_catalog.available(("raw.orders",))) == [
        "recency", "activity", "money", "time_pattern", "trend", "lifetime", "sequence"]
    every = ("raw.events", "raw.orders", "raw.users")
    assert feature_catalog.absent(every) == () and len(feature_catalog.available(every)) == len(
        feature_catalog.FEATURES)


def test_the_features_suite_skips_what_the_shop_cannot_have():
    from jobs.quality import applicable, load_suite_spec

    spec = load_suite_spec("features.user_features")
    columns = {e["kwargs"].get("column") for e in applicable(spec, ("raw.orders",))["expectations"]}
    assert "orders_90d" in columns and "views_30d" not in columns and "user_id" in columns
    assert applicable(spec, ("raw.events", "raw.orders", "raw.users")) == spec

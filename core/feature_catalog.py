"""The feature catalogue: every column of features.user_daily and features.user_features, declared once.

Each feature has a name, a family, a kind (numeric / categorical / sequence), a unit, a window and a
description. The feature contract (``NUMERIC_FEATURES``, ``CATEGORICAL_FEATURES``, ``SEQUENCE_CHANNELS``)
is derived here, and ``core.tables`` derives both table schemas from the lists here, so a new
feature is added in exactly one place (plus its computation in ``jobs/features/``, whose tests check
that every catalogued feature is produced). ``docs/features.md`` is generated from this module::

    python -m core.feature_catalog > docs/features.md

and a unit test fails when the committed file differs from the generated text. The GX suite
``expectations/features.user_features.json`` is generated the same way (``--suite``).

Stdlib only: the Airflow environment may import it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Literal

from core.settings import FEATURE_WINDOWS, SEQUENCE_DAYS

Kind = Literal["numeric", "categorical", "sequence"]

# UTC hour buckets for the time-of-day shares: [start hour, end hour) of each bucket, in order.
DAYPARTS: tuple[tuple[str, int, int], ...] = (
    ("night", 0, 6),
    ("morning", 6, 12),
    ("afternoon", 12, 18),
    ("evening", 18, 24),
)
# Age buckets from birth_year: (label, lowest age, highest age inclusive); no birth year -> 'unknown'.
AGE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("under_25", 0, 24),
    ("25_34", 25, 34),
    ("35_44", 35, 44),
    ("45_54", 45, 54),
    ("55_64", 55, 64),
    ("65_plus", 65, 200),
)
TREND_RECENT_DAYS = 7  # "last 7 days" of the trend features; compared with the 21 days before them
# Windows of the rate, time-pattern and diversity features (one window each keeps the vector small).
RATE_WINDOW = 30
DEVICE_WINDOW = 30  # the device feature: the device of most active days in the last 30
# The longest window is kept as a rolling state (jobs/features/window_state.py); the money and time-pattern
# features read that state, so their window is this one.
WINDOW_DAYS = max(FEATURE_WINDOWS)  # 90
PATTERN_WINDOW = MONEY_WINDOW = WINDOW_DAYS
# The shorter windows are summed from the user_daily rows of the last RECENT_DAYS days (30).
RECENT_DAYS = max(w for w in (*FEATURE_WINDOWS, RATE_WINDOW, DEVICE_WINDOW, SEQUENCE_DAYS) if w < WINDOW_DAYS)


@dataclass(frozen=True)
class DailyColumn:
    """A column of features.user_daily (one row per user and UTC day with activity)."""

    name: str
    type: str  # catalog type name
    description: str


@dataclass(frozen=True)
class Feature:
    """A column of features.user_features (one row per active user as of ds)."""

    name: str
    family: str
    kind: Kind
    unit: str
    window: str  # "7d", "30d", "90d", "28d", "lifetime", "as of ds", "snapshot"
    description: str
    bounded: tuple[float, float] | None = None  # declared range, checked by the GX suite
    nullable: bool = False
    source: str = ""  # a key of SOURCES: the raw table(s) it comes from (filled in from FEATURE_SOURCES)


# --- features.user_daily -------------------------------------------------------------------------
# The first 14 columns are the original contract; new columns are appended (readers select by name).
DAILY_COLUMNS: tuple[DailyColumn, ...] = (
    DailyColumn("user_id", "string", "User id."),
    DailyColumn("sessions", "long", "Distinct session_id values with an event that day."),
    DailyColumn("views", "long", "`view` events."),
    DailyColumn("searches", "long", "`search` events."),
    DailyColumn("add_to_carts", "long", "`add_to_cart` events."),
    DailyColumn("remove_from_carts", "long", "`remove_from_cart` events."),
    DailyColumn("purchases", "long", "`purchase` events (items bought; orders are counted separately)."),
    DailyColumn("distinct_products", "long", "Distinct product_id values among the day's events."),
    DailyColumn("distinct_categories", "long", "Distinct categories among the day's events."),
    DailyColumn("dwell_seconds", "double", "Sum of dwell_seconds over the day's events."),
    DailyColumn("orders", "long", "Completed orders."),
    DailyColumn("revenue", "double", "Sum of amount over completed orders."),
    DailyColumn("discount_amount", "double", "Sum of discount_amount over completed orders."),
    DailyColumn("device", "string", "Device with the most events that day (ties: alphabetically first)."),
    DailyColumn("events", "long", "All events of the day (every event type)."),
    *[
        DailyColumn(f"events_{name}", "long", f"Events with UTC hour in [{lo}, {hi}).")
        for name, lo, hi in DAYPARTS
    ],
    DailyColumn("cancelled_orders", "long", "Cancelled orders."),
    DailyColumn("refunded_orders", "long", "Refunded orders."),
    DailyColumn("category_events", "map<string,long>",
                "Events per category (map category -> count; events without a category are left out)."),
)

# --- features.user_features ----------------------------------------------------------------------
_SHARE = (0.0, 1.0)


# Windowed measures: name -> (family, unit, what). The first seven are the original contract, whose
# column order (per window, these seven) is kept; the newer measures follow, also per window.
_ORIGINAL_MEASURES: dict[str, tuple[str, str, str]] = {
    "active_days": ("activity", "days", "Days with any activity"),
    "sessions": ("activity", "count", "Sessions (distinct per day, summed over days)"),
    "views": ("activity", "count", "Product views"),
    "add_to_carts": ("activity", "count", "Add-to-cart events"),
    "purchases": ("activity", "count", "Purchase events (items bought)"),
    "orders": ("money", "count", "Completed orders (RFM frequency)"),
    "revenue": ("money", "currency", "Revenue of completed orders (RFM monetary)"),
}
_NEW_MEASURES: dict[str, tuple[str, str, str]] = {
    "searches": ("activity", "count", "Searches"),
    "product_days": ("activity", "count",
                     "Daily distinct products summed over days (a product seen on 3 days counts 3)"),
    "distinct_categories": ("activity", "count", "Distinct categories (exact over the window)"),
    "dwell_minutes": ("activity", "minutes", "Dwell time"),
}


def _windowed(measures: dict[str, tuple[str, str, str]]) -> list[Feature]:
    def bounds(measure: str, w: int) -> tuple[float, float] | None:
        # Every user with a row was active at least once in 90 days; no more active days than days.
        return (1 if w == max(FEATURE_WINDOWS) else 0, w) if measure == "active_days" else None

    return [Feature(f"{m}_{w}d", family, "numeric", unit, f"{w}d", f"{what} in the {w} days up to ds.", bounds(m, w))
            for w in FEATURE_WINDOWS for m, (family, unit, what) in measures.items()]


_RECENCY = [
    Feature("recency_days", "recency", "numeric", "days", "90d",
            "Days since the last day with any activity (0 = active on ds).", (0, 89)),
    Feature("purchase_recency_days", "recency", "numeric", "days", "90d",
            "Days since the last day with a purchase event or completed order; 90 when none in the window.",
            (0, 90)),
]

_RW, _MW, _PW = f"{RATE_WINDOW}d", f"{MONEY_WINDOW}d", f"{PATTERN_WINDOW}d"
_ORIGINAL_DERIVED = [
    Feature(f"dwell_per_view_{_RW}", "rates", "numeric", "seconds", _RW,
            "Dwell seconds per product view (0 without views)."),
    Feature(f"view_to_cart_{_RW}", "rates", "numeric", "ratio", _RW,
            "add_to_carts / views (0 without views; can exceed 1 when carting items viewed earlier)."),
    Feature(f"cart_to_purchase_{_RW}", "rates", "numeric", "ratio", _RW,
            "purchases / add_to_carts (0 without carts)."),
    Feature(f"discount_share_{_MW}", "money", "numeric", "share", _MW,
            "Discount / (revenue + discount) over completed orders.", _SHARE),
    Feature(f"avg_order_value_{_MW}", "money", "numeric", "currency", _MW,
            "Revenue / completed orders (0 without orders)."),
    Feature("activity_trend", "trend", "numeric", "log ratio", "28d",
            "log((1 + daily activity of the last 7 days) / (1 + daily activity of the 21 days before)); "
            "activity = views + searches + add_to_carts + purchases. >0 ramping up, <0 fading."),
    Feature("spend_trend", "trend", "numeric", "log ratio", "28d",
            "Same as activity_trend for revenue per day."),
]
_STATIC_ORIGINAL = [
    Feature("age", "static", "numeric", "years", "snapshot", "Year of ds minus birth_year.", nullable=True),
    Feature("tenure_days", "static", "numeric", "days", "snapshot", "Days from signup to ds.", nullable=True),
]
_NEW_NUMERIC = [
    # money
    Feature(f"avg_order_value_{_RW}", "money", "numeric", "currency", _RW,
            "Revenue / completed orders (0 without orders)."),
    Feature(f"cancel_rate_{_MW}", "money", "numeric", "share", _MW,
            "Cancelled orders / all orders (0 without orders).", _SHARE),
    Feature(f"refund_rate_{_MW}", "money", "numeric", "share", _MW,
            "Refunded orders / all orders (0 without orders).", _SHARE),
    # rates
    Feature(f"view_to_purchase_{_RW}", "rates", "numeric", "ratio", _RW,
            "purchases / views (0 without views)."),
    Feature(f"search_to_view_{_RW}", "rates", "numeric", "ratio", _RW,
            "Product views per search: the click-through proxy (there is no impression log); "
            "0 without searches."),
    Feature(f"sessions_per_active_day_{_RW}", "rates", "numeric", "count", _RW,
            "sessions / active days (0 when inactive in the window)."),
    # time patterns
    *[Feature(f"share_{name}_{_PW}", "time_pattern", "numeric", "share", _PW,
              f"Share of events with UTC hour in [{lo}, {hi}) ({name}).", _SHARE)
      for name, lo, hi in DAYPARTS],
    Feature(f"weekend_share_{_PW}", "time_pattern", "numeric", "share", _PW,
            "Share of events on Saturday or Sunday (UTC days).", _SHARE),
    Feature(f"holiday_share_{_PW}", "time_pattern", "numeric", "share", _PW,
            "Share of events on public holidays of SEGMENTS_HOLIDAY_COUNTRY (the `holidays` package).",
            _SHARE),
    Feature(f"active_day_ratio_{_PW}", "time_pattern", "numeric", "share", _PW,
            "active_days_90d / days observable: min(90, days_since_first_seen + 1), so a user who "
            "arrived 10 days ago and was active on 5 of them scores 0.5.", _SHARE),
    # trend
    Feature("activity_slope_28d", "trend", "numeric", "events/day per day", "28d",
            "Least-squares slope of daily activity over the 28-day sequence (day 0 = ds-27)."),
    Feature("spend_slope_28d", "trend", "numeric", "currency/day per day", "28d",
            "Least-squares slope of daily revenue over the 28-day sequence."),
    # diversity
    Feature(f"category_entropy_{_PW}", "diversity", "numeric", "bits", _PW,
            "Shannon entropy of the user's events over categories (0 = a single category)."),
    # lifetime (features.user_lifetime, exact beyond the 90-day window)
    Feature("days_since_first_seen", "lifetime", "numeric", "days", "lifetime",
            "Days from the first day with activity to ds (0 = first seen on ds)."),
    Feature("lifetime_purchase_recency_days", "lifetime", "numeric", "days", "lifetime",
            "Days since the last completed order, not capped at 90; never purchased -> "
            "days_since_first_seen + 1 (longer ago than anything observed)."),
    Feature("lifetime_orders", "lifetime", "numeric", "count", "lifetime", "Completed orders ever."),
    Feature("lifetime_revenue", "lifetime", "numeric", "currency", "lifetime", "Revenue ever."),
    Feature("lifetime_active_days", "lifetime", "numeric", "days", "lifetime", "Days with activity ever."),
]

_CATEGORICAL = [
    Feature("gender", "static", "categorical", "", "snapshot", "From raw.users; missing -> 'unknown'."),
    Feature("occupation", "static", "categorical", "", "snapshot", "From raw.users; missing -> 'unknown'."),
    Feature("city_tier", "static", "categorical", "", "snapshot", "From raw.users; missing -> 'unknown'."),
    Feature("device", "static", "categorical", "", f"{DEVICE_WINDOW}d",
            f"Most frequent daily main device over the last {DEVICE_WINDOW} days; 'unknown' without events."),
    Feature("age_bucket", "static", "categorical", "", "snapshot",
            "Age bucket: " + ", ".join(label for label, _, _ in AGE_BUCKETS) + "; 'unknown' without birth_year."),
    Feature(f"top_category_{_PW}", "diversity", "categorical", "", _PW,
            "Category with the most events (ties: alphabetically first); 'unknown' without events."),
]

# Sequence channels: user_daily column, scale per day. Fixed order: the LSTM reads them in this order.
SEQUENCE_SOURCES: tuple[tuple[str, str, float, str], ...] = (
    ("seq_sessions", "sessions", 1.0, "sessions"),
    ("seq_views", "views", 1.0, "views"),
    ("seq_searches", "searches", 1.0, "searches"),
    ("seq_add_to_carts", "add_to_carts", 1.0, "add-to-carts"),
    ("seq_purchases", "purchases", 1.0, "purchase events"),
    ("seq_revenue", "revenue", 1.0, "revenue of completed orders"),
    ("seq_dwell_minutes", "dwell_seconds", 1 / 60, "dwell minutes"),
)
_SEQUENCE = [
    Feature(channel, "sequence", "sequence", unit, f"{SEQUENCE_DAYS}d",
            f"Daily {unit}, {SEQUENCE_DAYS} values, oldest day (ds-{SEQUENCE_DAYS - 1}) first, 0 on inactive days.")
    for channel, _, _, unit in SEQUENCE_SOURCES
]

FEATURES: tuple[Feature, ...] = (
    # the original contract first, in its original order; newer features after it
    *_RECENCY, *_windowed(_ORIGINAL_MEASURES), *_ORIGINAL_DERIVED, *_STATIC_ORIGINAL,
    *_windowed(_NEW_MEASURES), *_NEW_NUMERIC, *_CATEGORICAL, *_SEQUENCE,
)
# What each feature is computed from, by name or by name prefix (the windowed ones): a key of SOURCES. A shop
# whose raw tables (SEGMENTS_RAW_TABLES) lack a feature's source has that feature absent: null in
# features.user_features, left out of the model, skipped by the GX suite.
SOURCES: dict[str, tuple[str, ...]] = {
    "events": ("raw.events",),
    "orders": ("raw.orders",),
    "users": ("raw.users",),
    "activity": ("raw.events", "raw.orders"),  # any day with an event or an order: either table will do
}
FEATURE_SOURCES: dict[str, str] = {
    **dict.fromkeys(("recency_days", "purchase_recency_days", "active_days_", "active_day_ratio_",
                     "days_since_first_seen", "lifetime_purchase_recency_days", "lifetime_active_days"),
                    "activity"),
    **dict.fromkeys(("orders_", "revenue_", "discount_share_", "avg_order_value_", "cancel_rate_",
                     "refund_rate_", "spend_trend", "spend_slope_", "lifetime_orders", "lifetime_revenue",
                     "seq_revenue"), "orders"),
    **dict.fromkeys(("age", "tenure_days", "gender", "occupation", "city_tier", "age_bucket"), "users"),
    **dict.fromkeys(("sessions_", "views_", "add_to_carts_", "purchases_", "searches_", "product_days_",
                     "distinct_categories_", "dwell_minutes_", "dwell_per_view_", "view_to_cart_",
                     "cart_to_purchase_", "view_to_purchase_", "search_to_view_", "sessions_per_active_day_",
                     "share_", "weekend_share_", "holiday_share_", "activity_trend", "activity_slope_",
                     "category_entropy_", "device", "top_category_", "seq_"), "events"),
}


def _source_of(name: str) -> str:
    """The FEATURE_SOURCES entry of a feature: its exact name, else the longest matching prefix."""
    if name in FEATURE_SOURCES:
        return FEATURE_SOURCES[name]
    prefixes = [p for p in FEATURE_SOURCES if p.endswith("_") and name.startswith(p)]
    if not prefixes:
        raise KeyError(f"feature {name!r} has no entry in FEATURE_SOURCES")
    return FEATURE_SOURCES[max(prefixes, key=len)]


FEATURES = tuple(replace(f, source=_source_of(f.name)) for f in FEATURES)

FAMILIES: tuple[str, ...] = ("recency", "activity", "money", "rates", "time_pattern", "trend", "diversity",
                             "static", "lifetime", "sequence")

NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "numeric")
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "categorical")
SEQUENCE_CHANNELS: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "sequence")

assert len({f.name for f in FEATURES}) == len(FEATURES), "duplicate feature name"
assert all(f.family in FAMILIES for f in FEATURES), "feature with an undeclared family"


# The three shop profiles of docs/data-contract.md, each tested end to end.
SHOP_PROFILES: dict[str, tuple[str, ...]] = {
    "clickstream + orders": ("raw.events", "raw.orders", "raw.users"),
    "orders only (a purchase log)": ("raw.orders",),
    "events only": ("raw.events", "raw.users"),
}


def available(raw_tables: tuple[str, ...] | list[str]) -> tuple[Feature, ...]:
    """The features a shop with these raw tables can have (any table of the feature's source will do)."""
    have = set(raw_tables)
    return tuple(f for f in FEATURES if have & set(SOURCES[f.source]))


def absent(raw_tables: tuple[str, ...] | list[str]) -> tuple[Feature, ...]:
    """The features a shop with these raw tables cannot have: null in features.user_features."""
    names = {f.name for f in available(raw_tables)}
    return tuple(f for f in FEATURES if f.name not in names)


def families(features: tuple[Feature, ...] | list[Feature]) -> list[str]:
    """The families (FAMILIES order) with at least one of these features."""
    present = {f.family for f in features}
    return [family for family in FAMILIES if family in present]


def feature(name: str) -> Feature:
    for f in FEATURES:
        if f.name == name:
            return f
    raise KeyError(f"unknown feature {name!r}")


def markdown() -> str:
    """docs/features.md: the catalogue as tables, one per family, plus the user_daily columns."""
    lines = [
        "# Feature catalogue",
        "",
        "<!-- Generated by `python -m core.feature_catalog > docs/features.md`; do not edit by hand."
        " A unit test fails when this file differs from the generated text. -->",
        "",
        "Declared once in `core/feature_catalog.py`; computed by `jobs/features/` (Spark). "
        "`features.user_features` holds one row per user active in the 90 days up to ds; every feature uses "
        "only data with event/order time before ds + 1 day. Windows end at ds inclusive "
        "(`7d` = [ds-6, ds]). Ratios are 0 when their denominator is 0. Times are UTC.",
        "",
        f"Model inputs: {len(NUMERIC_FEATURES)} numeric, {len(CATEGORICAL_FEATURES)} categorical "
        f"(one-hot with `unknown`), {len(SEQUENCE_CHANNELS)} sequence channels x {SEQUENCE_DAYS} days.",
        "",
        "Time-of-day buckets (UTC hour): "
        + ", ".join(f"{name} [{lo}, {hi})" for name, lo, hi in DAYPARTS)
        + ". Holidays: the `holidays` package for the country in `SEGMENTS_HOLIDAY_COUNTRY` (default US).",
        "RFM: recency = `recency_days` / `purchase_recency_days` (90-day window) and "
        "`lifetime_purchase_recency_days` (exact); frequency = `orders_<w>d`; monetary = `revenue_<w>d`.",
        "",
    ]
    lines += [
        "## What each shop has",
        "",
        "A feature's *source* says which raw tables it is computed from (`activity`: raw.events or "
        "raw.orders). A shop declares its raw tables in `SEGMENTS_RAW_TABLES`; the features whose source it "
        "lacks are absent: null in `features.user_features`, skipped by its GX suite, left out of the model "
        "(which records the families it was trained on). See docs/data-contract.md.",
        "",
        "| shop profile | SEGMENTS_RAW_TABLES | features | families |",
        "|---|---|---|---|",
        *[f"| {label} | `{','.join(profile)}` | {len(available(profile))} | "
          f"{', '.join(families(available(profile)))} |" for label, profile in SHOP_PROFILES.items()],
        "",
    ]
    for family in FAMILIES:
        members = [f for f in FEATURES if f.family == family]
        if not members:
            continue
        lines += [f"## {family}", "", "| feature | kind | unit | window | source | description |",
                  "|---|---|---|---|---|---|"]
        for f in members:
            lines.append(f"| `{f.name}` | {f.kind} | {f.unit} | {f.window} | {f.source} | {f.description} |")
        lines.append("")
    lines += [
        "## The sequence channels, in order",
        "",
        "The LSTM reads a tensor [users, " f"{SEQUENCE_DAYS}, {len(SEQUENCE_CHANNELS)}] in this channel order "
        "(new channels may only be appended):",
        "",
        *[f"{i}. `{channel}` <- `user_daily.{column}`" + (f" x {scale:.6g}" if scale != 1.0 else "")
          for i, (channel, column, scale, _) in enumerate(SEQUENCE_SOURCES)],
        "",
        "## features.user_daily",
        "",
        "One row per user and UTC day with any event or order (cleaned inputs). The windows above are "
        "computed from it, never from raw events.",
        "",
        "| column | type | description |",
        "|---|---|---|",
        *[f"| `{c.name}` | {c.type} | {c.description} |" for c in DAILY_COLUMNS],
        "",
    ]
    return "\n".join(lines)


# Units whose values cannot be negative: the GX suite checks min 0 for them (trends and slopes can be).
_NON_NEGATIVE_UNITS = {"days", "count", "currency", "minutes", "seconds", "ratio", "share", "bits"}


def gx_suite() -> dict:
    """expectations/features.user_features.json, derived from the catalogue (engine: pandas).

    Keys unique and present; every non-nullable feature present; declared ranges (shares in [0, 1],
    recency, active days) and min 0 for counts, money, durations and ratios.
    """
    exp: list[dict] = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "user_id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "user_id"}},
    ]
    for f in FEATURES:
        if not f.nullable:
            exp.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": f.name}})
        if f.kind != "numeric":
            continue
        low, high = f.bounded if f.bounded else ((0, None) if f.unit in _NON_NEGATIVE_UNITS else (None, None))
        if low is None and high is None:
            continue
        kwargs: dict = {"column": f.name}
        if low is not None:
            kwargs["min_value"] = low
        if high is not None:
            kwargs["max_value"] = high
        exp.append({"type": "expect_column_values_to_be_between", "kwargs": kwargs})
    return {
        "name": "features.user_features",
        "meta": {
            "engine": "pandas",
            "engine_why": "one row per user: pandas, no JVM start",
            "notes": "Generated by `python -m core.feature_catalog --suite`: one row per active user, every "
                     "non-nullable feature present, declared ranges, counts and money non-negative.",
        },
        "expectations": exp,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--suite"]:
        import json

        sys.stdout.write(json.dumps(gx_suite(), indent=2) + "\n")
        return 0
    if args:
        sys.stderr.write("usage: python -m core.feature_catalog [--suite]\n")
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Unit tests of the synthetic warehouse generator (the ``synthetic`` package) at a tiny size."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core import tables, warehouse
from synthetic import dirt, generator, personas, population

USERS, DAYS, END = 300, 35, "2024-03-31"
DATES = [(dt.date(2024, 3, 31) - dt.timedelta(days=DAYS - 1 - i)).isoformat() for i in range(DAYS)]
RAW = ("raw.events", "raw.orders", "raw.users")


def _read_all(name: str) -> pd.DataFrame:
    return pa.concat_tables(
        [warehouse.read_arrow(name, ds, columns=tables.table(name).all_columns()) for ds in DATES]
    ).to_pandas()


def _generate(home, seed: int = 7) -> generator.SeedSummary:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGMENTS_HOME", str(home))
        mp.delenv("SEGMENTS_WAREHOUSE", raising=False)
        return generator.generate(USERS, DAYS, END, seed=seed, progress=False)


def _snapshot(home) -> dict[str, pa.Table]:
    """Every table and partition, as Arrow, read through the catalog."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGMENTS_HOME", str(home))
        mp.delenv("SEGMENTS_WAREHOUSE", raising=False)
        out = {f"{n}/{ds}": warehouse.read_arrow(n, ds) for n in RAW for ds in warehouse.partitions(n)}
        out["eval.planted_personas"] = warehouse.read_arrow("eval.planted_personas")
        return out


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    """One generated warehouse shared by the module; SEGMENTS_HOME points at it during each test."""
    home = tmp_path_factory.mktemp("synthetic")
    summary = _generate(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGMENTS_HOME", str(home))
        mp.delenv("SEGMENTS_WAREHOUSE", raising=False)
        events = _read_all("raw.events")
        orders = _read_all("raw.orders")
        users = _read_all("raw.users")
        planted = warehouse.read_pandas("eval.planted_personas")
    return {"home": home, "summary": summary, "events": events, "orders": orders, "users": users,
            "personas": planted}


@pytest.fixture()
def at_home(wh, monkeypatch):
    monkeypatch.setenv("SEGMENTS_HOME", str(wh["home"]))
    monkeypatch.delenv("SEGMENTS_WAREHOUSE", raising=False)
    return wh


def _without_junk(ev: pd.DataFrame) -> pd.DataFrame:
    """Drop the rows cleaning quarantines: unknown event types and negative prices."""
    return ev[ev["event_type"].isin(tables.EVENT_TYPES) & (ev["price"] >= 0)]


@pytest.fixture(scope="module")
def clean(wh):
    """Deduplicated, non-junk events with a known user, joined to the planted persona, on their true
    (UTC) day, plus days-before-end b."""
    ev = _without_junk(wh["events"]).drop_duplicates("event_id")
    ev = ev[ev["user_id"].notna()].merge(wh["personas"], on="user_id")
    ev["ds"] = ev["event_ts"].dt.strftime("%Y-%m-%d")  # the true day, not the arrival partition
    ev["b"] = (pd.Timestamp(END) - pd.to_datetime(ev["ds"])).dt.days
    od = wh["orders"].merge(wh["personas"], on="user_id")
    od["b"] = (pd.Timestamp(END) - pd.to_datetime(od["ds"])).dt.days
    return ev, od


def test_summary(wh):
    s = wh["summary"]
    assert (s.users, s.days, s.start_date, s.end_date) == (USERS, DAYS, DATES[0], END)
    assert s.events == len(wh["events"]) and s.orders == len(wh["orders"])
    assert sum(s.persona_counts.values()) == USERS


def test_partitions_are_exactly_the_requested_dates(at_home):
    for name in RAW:
        assert warehouse.partitions(name) == DATES, name


def test_files_have_the_catalog_schema(at_home):
    for name in RAW:
        for ds in (DATES[0], DATES[-1]):
            files = list(Path(warehouse.partition_path(name, ds)).glob("*.parquet"))
            assert files, (name, ds)
            for f in files:
                assert pq.read_schema(f).remove_metadata().equals(tables.table(name).arrow_schema()), name
    f = next(Path(warehouse.table_path("eval.planted_personas")).glob("*.parquet"))
    assert pq.read_schema(f).remove_metadata().equals(tables.table("eval.planted_personas").arrow_schema())


def test_same_seed_identical_other_seed_different(wh, tmp_path):
    _generate(tmp_path / "same", seed=7)
    _generate(tmp_path / "other", seed=8)
    base, same, other = _snapshot(wh["home"]), _snapshot(tmp_path / "same"), _snapshot(tmp_path / "other")
    assert base.keys() == same.keys()
    for key in base:
        assert base[key].equals(same[key]), key
    assert not base["raw.events/" + END].equals(other["raw.events/" + END])
    assert not base["eval.planted_personas"].equals(other["eval.planted_personas"])


def test_every_persona_present_with_its_share(wh):
    counts = wh["personas"]["persona"].value_counts()
    assert set(counts.index) == set(personas.PERSONAS)
    for persona, share in zip(personas.PERSONAS, personas.PERSONA_SHARES):
        assert abs(counts[persona] - share * USERS) <= 1, persona
    assert wh["personas"]["user_id"].is_unique and len(wh["personas"]) == USERS
    assert wh["personas"]["user_id"].str.fullmatch(r"u\d{7}").all()


def test_value_domains(wh):
    ev, od = _without_junk(wh["events"]), wh["orders"]
    assert set(ev["event_type"]) == set(tables.EVENT_TYPES)
    assert set(ev["device"]) == set(population.DEVICES)
    assert (ev["price"] >= 0).all() and (ev["quantity"] >= 1).all() and (ev["dwell_seconds"] >= 0).all()
    assert ev.loc[ev["event_type"] != "search", "product_id"].notna().all()
    assert set(od["status"]) <= set(tables.ORDER_STATUSES)
    assert (od["status"] == "completed").mean() > 0.85
    assert (od["discount_amount"] >= 0).all() and (od["amount"] >= 0).all()
    assert od["order_id"].is_unique and (od["item_count"] >= 1).all()


def test_timestamps_fall_inside_their_ds_day_except_late_events(wh):
    od = wh["orders"]
    assert (od["order_ts"].dt.strftime("%Y-%m-%d") == od["ds"]).all()  # orders arrive on time
    ev = wh["events"]
    assert str(ev["event_ts"].dt.tz) == str(od["order_ts"].dt.tz) == "UTC"
    true_day = pd.to_datetime(ev["event_ts"].dt.strftime("%Y-%m-%d"))
    delay = (pd.to_datetime(ev["ds"]) - true_day).dt.days
    assert (delay >= 0).all()  # never in the future of the partition
    # ~1% arrive one day late, ~0.05% four days late (beyond the default 2-day lookback), none else.
    assert set(delay.unique()) == {0, 1, dirt.LATE_FAR_DAYS}
    assert 0.005 < (delay == 1).mean() < 0.02
    assert 0 < (delay == dirt.LATE_FAR_DAYS).mean() < 0.002
    # The first partition has nothing late; late rows due after the end date have not arrived.
    assert (delay[ev["ds"] == DATES[0]] == 0).all()


def test_dirt_for_the_cleaning_stage_at_small_rates(wh):
    ev = wh["events"]
    junk_type = ev["event_type"] == dirt.JUNK_EVENT_TYPE
    negative = ev["price"] < 0
    assert set(ev["event_type"]) == {*tables.EVENT_TYPES, dirt.JUNK_EVENT_TYPE}
    assert 0 < junk_type.mean() < 0.002 and 0 < negative.mean() < 0.002
    assert ev.loc[negative, "event_type"].eq("view").all()
    assert ev.loc[junk_type | negative, "event_id"].is_unique  # extra rows with their own ids
    # Price outliers: views far above the most expensive product of the catalogue (a 100x feed error).
    clean_views = _without_junk(ev)
    top = clean_views.loc[clean_views["event_type"] == "purchase", "price"].max()
    outliers = clean_views["price"] > top * 3
    assert 0 < outliers.sum() and outliers.mean() < 0.002


def test_quality_defects_at_small_rates(wh):
    ev, users = wh["events"], wh["users"]
    dup_rate = ev["event_id"].duplicated().mean()
    assert 0.002 < dup_rate < 0.02
    # duplicates are exact copies (one may arrive late, in another partition): dropping full-row
    # duplicates leaves event_id unique
    assert ev.drop(columns="ds").drop_duplicates()["event_id"].is_unique
    null_rate = ev["user_id"].isna().mean()
    assert 0.0002 < null_rate < 0.005
    for col in ("birth_year", "gender", "occupation", "city_tier"):
        missing = users.drop_duplicates("user_id")[col].isna().mean()
        assert 0.005 < missing < 0.15, col


def test_orders_match_purchase_events(wh):
    ev = wh["events"].drop_duplicates("event_id")
    ev = ev.assign(ds=ev["event_ts"].dt.strftime("%Y-%m-%d"))  # true day: late events included
    # Late events of the last days have not arrived yet: compare the days whose events are all in.
    ev = ev[ev["ds"] < DATES[-dirt.LATE_FAR_DAYS]]
    buys = ev[ev["event_type"] == "purchase"]
    gross = (buys["price"] * buys["quantity"]).groupby(buys["ds"]).sum()
    od = wh["orders"]
    od_gross = (od["amount"] + od["discount_amount"]).groupby(od["ds"]).sum()
    np.testing.assert_allclose(od_gross.loc[gross.index], gross, rtol=1e-6, atol=0.05)
    sessions = buys.groupby("ds")["session_id"].nunique()
    assert (od.groupby("ds").size().loc[sessions.index] == sessions).all()
    items = od.groupby("ds")["item_count"].sum().loc[sessions.index]
    assert (items == buys.groupby("ds")["quantity"].sum()).all()


def test_users_snapshot_is_consistent(wh):
    users = wh["users"]
    per_day = users.groupby("ds").size().loc[DATES]
    assert per_day.is_monotonic_increasing and per_day.iloc[-1] == USERS and per_day.iloc[0] < USERS
    attrs = ["signup_ts", "birth_year", "gender", "occupation", "city_tier"]
    assert (users.fillna({"gender": "?", "occupation": "?", "city_tier": "?", "birth_year": -1})
            .drop_duplicates(["user_id", *attrs]).groupby("user_id").size() == 1).all()
    day_end = pd.to_datetime(users["ds"]).dt.tz_localize("UTC") + pd.Timedelta(days=1)
    assert (users["signup_ts"] < day_end).all()
    # no activity before signup
    ev = wh["events"].dropna(subset=["user_id"])
    first = ev.groupby("user_id")["event_ts"].min()
    signup = users.drop_duplicates("user_id").set_index("user_id")["signup_ts"]
    assert (first >= signup.loc[first.index]).all()


def _totals_28d(ev: pd.DataFrame, od: pd.DataFrame, persona: str, n: int) -> dict[str, float]:
    e = ev[(ev["persona"] == persona) & (ev["b"] < 28)]
    o = od[(od["persona"] == persona) & (od["b"] < 28) & (od["status"] == "completed")]
    return {
        "views": (e["event_type"] == "view").sum() / n,
        "purchases": (e["event_type"] == "purchase").sum() / n,
        "revenue": o["amount"].sum() / n,
        "first7": (e["b"] >= 21).sum() / n,
        "last7": (e["b"] < 7).sum() / n,
    }


def test_at_risk_and_new_and_growing_similar_totals_opposite_trends(wh, clean):
    ev, od = clean
    counts = wh["personas"]["persona"].value_counts()
    ar = _totals_28d(ev, od, "at_risk", counts["at_risk"])
    ng = _totals_28d(ev, od, "new_and_growing", counts["new_and_growing"])
    # 45 users each: sampling noise is ~10% on counts and ~20% on revenue.
    for key, tol in (("views", 0.25), ("purchases", 0.3), ("revenue", 0.4)):
        assert abs(ng[key] / ar[key] - 1) < tol, (key, ar[key], ng[key])
    assert ar["last7"] / ar["first7"] < 0.5, ar
    assert ng["last7"] / ng["first7"] > 1.5, ng
    # new_and_growing have no activity before their signup (30-45 days before the end)
    assert ev.loc[ev["persona"] == "new_and_growing", "b"].max() < 45


def test_bargain_hunters_have_the_highest_discount_share(clean):
    _, od = clean
    by = od.groupby("persona")[["amount", "discount_amount"]].sum()
    share = by["discount_amount"] / (by["amount"] + by["discount_amount"])
    assert 0.2 < share["bargain_hunter"] < 0.5
    assert share.drop("bargain_hunter").max() < share["bargain_hunter"] / 3


def test_window_shoppers_convert_least_and_dwell_longest(clean):
    ev, _ = clean
    types = ev.groupby("persona")["event_type"].value_counts().unstack(fill_value=0)
    conversion = types["purchase"] / types["view"]
    assert conversion.idxmin() == "window_shopper"
    assert conversion["window_shopper"] < conversion.drop("window_shopper").min() / 3
    dwell = ev[ev["event_type"] == "view"].groupby("persona")["dwell_seconds"].mean()
    assert dwell.idxmax() == "window_shopper"


def test_high_value_loyal_most_active_and_biggest_baskets(clean):
    ev, od = clean
    active_days = ev.groupby(["persona", "user_id"])["ds"].nunique().groupby("persona").mean()
    assert active_days.idxmax() == "high_value_loyal"
    aov = od.groupby("persona")["amount"].mean()
    assert aov.idxmax() == "high_value_loyal"


def test_weekends_and_evenings_are_busier(clean):
    ev, _ = clean
    weekend = pd.to_datetime(ev["ds"]).dt.weekday >= 5
    per_day = ev.groupby([weekend, ev["ds"]]).size().groupby(level=0).mean()
    assert per_day[True] > 1.05 * per_day[False]
    hour = ev["event_ts"].dt.hour
    assert hour.between(18, 22).mean() > hour.between(3, 7).mean() * 5


def test_rejects_bad_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTS_HOME", str(tmp_path))
    with pytest.raises(ValueError):
        generator.generate(3, 10, END, progress=False)
    with pytest.raises(ValueError):
        generator.generate(100, 0, END, progress=False)

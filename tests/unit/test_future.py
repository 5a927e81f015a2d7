"""ml/future.py: the population, the future outcome, eta squared, churn AUC, RFM scores and the input checks.

Every expected number is derived by hand in the comment next to it.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from core.errors import PlatformError
from core.tables import table
from core.warehouse import TableNotFound, write_arrow
from ml import future

D = "2024-01-10"  # cutoff; with horizon 5 the window is 2024-01-11 .. 2024-01-15 (UTC)


def orders(*rows) -> pd.DataFrame:
    """(order_id, user_id, order_ts, amount, status) rows; timestamps are ISO strings (offset or naive)."""
    frame = pd.DataFrame(rows, columns=list(future.ORDER_COLUMNS))
    frame["order_ts"] = pd.to_datetime(frame["order_ts"], format="ISO8601", utc=True)
    return frame


def labels(mapping: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": list(mapping), "segment_name": list(mapping.values())})


def test_population_history_and_future_window():
    frame = orders(
        ("o1", "u1", "2024-01-02 10:00+00:00", 10.0, "completed"),
        ("o2", "u1", "2024-01-10 23:59:59+00:00", 20.0, "completed"),  # last instant of D: history
        ("o3", "u1", "2024-01-11 00:00:00+00:00", 5.0, "completed"),   # first instant of the window
        ("o3", "u1", "2024-01-11 00:00:00+00:00", 5.0, "completed"),   # the same order delivered twice
        ("o4", "u2", "2024-01-05 08:00+00:00", 30.0, "completed"),
        ("o5", "u2", "2024-01-12 08:00+00:00", 7.0, "cancelled"),      # not a purchase
        ("o6", "u2", "2024-01-16 00:00+00:00", 50.0, "completed"),     # first instant after the window
        ("o7", "u3", "2024-01-12 08:00+00:00", 40.0, "completed"),     # no history: not in the population
        ("o8", "u4", "2024-01-11 01:00+02:00", 9.0, "completed"),      # = 01-10 23:00 UTC: history
        ("o9", "u4", "2024-01-09 12:00+00:00", -3.0, "completed"),     # negative: quarantined, ignored
        ("o10", None, "2024-01-09 12:00+00:00", 3.0, "completed"),     # no user: dropped
    )
    got = future.customer_outcomes(frame, D, 5)
    # u1: last purchase on D -> recency 0, 2 orders, 30 spent; 5 in the window. u2: last purchase 01-05 ->
    # recency 5, 1 order of 30; nothing completed in the window -> churned. u4: one order of 9 on D.
    assert got.index.tolist() == ["u1", "u2", "u4"]
    assert got["recency_days"].tolist() == [0, 5, 0]
    assert got["frequency"].tolist() == [2, 1, 1]
    assert got["monetary"].tolist() == [30.0, 30.0, 9.0]
    assert got["future_spend"].tolist() == [5.0, 0.0, 0.0]
    assert got["churned"].tolist() == [False, True, True]


def test_naive_timestamps_are_taken_as_utc():
    aware = orders(("o1", "u1", "2024-01-09 23:30+00:00", 1.0, "completed"),
                   ("o2", "u1", "2024-01-15 23:30+00:00", 2.0, "completed"))
    naive = aware.assign(order_ts=aware["order_ts"].dt.tz_localize(None))
    got = future.customer_outcomes(naive, D, 5)
    pd.testing.assert_frame_equal(got, future.customer_outcomes(aware, D, 5))
    # recency: 01-09 23:30 is one whole UTC day before D; 01-15 23:30 is the window's last day.
    assert got.loc["u1", ["recency_days", "future_spend"]].tolist() == [1, 2.0]


def test_eta_squared_by_hand():
    # Two groups that separate the values completely: within-group SS 0 -> eta2 = 1.
    assert future.eta_squared([0, 0, 10, 10], ["a", "a", "b", "b"]) == 1.0
    # One group: between-group SS 0 -> eta2 = 0.
    assert future.eta_squared([0, 2, 4, 6], ["x"] * 4) == 0.0
    # y = 0, 2, 4, 6 (mean 3): total SS 9+1+1+9 = 20; group means 1 and 5: between SS 2*4 + 2*4 = 16 -> 0.8.
    assert future.eta_squared([0, 2, 4, 6], ["a", "a", "b", "b"]) == pytest.approx(0.8)
    # Nobody differs: eta2 is undefined.
    assert math.isnan(future.eta_squared([3, 3], ["a", "b"]))


def test_churn_auc_by_hand():
    assert future.churn_auc([1, 1, 0, 0], ["a", "a", "b", "b"]) == 1.0  # rates 1 and 0: perfect ranking
    assert future.churn_auc([1, 0, 1, 0], ["x"] * 4) == 0.5  # one rate for all: every pair ties
    # Rates a = 2/3, b = 0. Positives 0 and 2 (score 2/3); negatives 1 (2/3) and 3, 4, 5 (0). Of the 2 x 4
    # pairs each positive ties one (0.5) and beats three: (2 * 3.5) / 8 = 0.875.
    assert future.churn_auc([1, 0, 1, 0, 0, 0], list("aaabbb")) == pytest.approx(0.875)
    assert math.isnan(future.churn_auc([0, 0], ["a", "b"]))  # nobody churns: undefined


def test_quantile_scores_and_rfm_by_hand():
    # Distinct values: 0..4 customers strictly below -> 1 + 5*b//5 = 1..5.
    assert future.quantile_scores([10, 20, 30, 40, 50], 5).tolist() == [1, 2, 3, 4, 5]
    # Ties share a score: below = 0, 0, 0, 3, 4 -> 1, 1, 1, 1 + 15//5 = 4, 1 + 20//5 = 5 (2 and 3 unused).
    assert future.quantile_scores([1, 1, 1, 2, 3], 5).tolist() == [1, 1, 1, 4, 5]
    customers = pd.DataFrame({"recency_days": [0, 1, 2, 3, 4], "frequency": [5, 1, 1, 1, 2],
                              "monetary": [10.0, 20.0, 30.0, 40.0, 50.0]})
    scores = future.rfm_scores(customers)
    assert scores["R"].tolist() == [5, 4, 3, 2, 1]  # recent = high
    assert scores["F"].tolist() == [5, 1, 1, 1, 4]  # below = 4, 0, 0, 0, 3
    assert scores["M"].tolist() == [1, 2, 3, 4, 5]
    # Sums 11, 7, 7, 7, 10 -> below 4, 0, 0, 0, 3 -> k = 2 bins: 1 + 2*b//5 = 2, 1, 1, 1, 2.
    assert future.rfm_quintile_labels(customers, 2).tolist() == [2, 1, 1, 1, 2]


def _shop() -> pd.DataFrame:
    """Six customers bought on D; u1-u3 buy 100 each in the window, u4-u6 nothing."""
    rows = [(f"h{i}", f"u{i}", f"2024-01-0{i} 12:00+00:00", 10.0 * i, "completed") for i in range(1, 7)]
    rows += [(f"f{i}", f"u{i}", "2024-01-12 12:00+00:00", 100.0, "completed") for i in range(1, 4)]
    return orders(*rows)


def test_segments_that_separate_spenders_score_one_and_unlabelled_is_a_group():
    result = future.evaluate_future(_shop(), labels({"u1": "loyal", "u2": "loyal", "u3": "loyal",
                                                     "u4": "at_risk", "u5": "at_risk"}), D, 5)
    # u6 has no label -> 'unlabelled'. loyal: all log1p(100), at_risk and unlabelled: all 0 -> no spread
    # within groups: eta2 = 1; churn rates 0 / 1 / 1 rank every churner above every buyer: AUC = 1.
    assert (result.population, result.churn_share, result.unlabelled) == (6, 0.5, 1)
    assert (result.platform_k, result.k, result.capped) == (2, 2, False)
    platform = result.methods.set_index("method").loc["platform"]
    assert (platform["k"], platform["eta2"], platform["churn_auc"]) == (3, 1.0, 1.0)
    assert result.methods["method"].tolist() == list(future.METHODS)
    assert result.methods.set_index("method").loc[["kmeans_rfm", "rfm_quintiles"], "k"].le(2).all()
    segments = result.segments[result.segments["method"] == "platform"].set_index("segment")
    assert segments.loc["loyal", ["customers", "share", "mean_future_spend", "churn_rate"]].tolist() == [
        3, 0.5, 100.0, 0.0]
    assert segments.loc["unlabelled", "customers"] == 1
    expected = {"population": 6.0, "platform_eta2": 1.0, "platform_churn_auc": 1.0}
    assert expected.items() <= result.metrics().items()
    text = future.format_report(result)
    assert "| platform      | 3 | 1.000 | 1.000     |" in text and "1 customers unlabelled" in text


def test_a_constant_segmentation_explains_nothing():
    one = labels({f"u{i}": "everyone" for i in range(1, 7)})
    with pytest.raises(future.NoPopulation, match="1 segment"):
        future.evaluate_future(_shop(), one, D, 5)  # k would be 1: the baselines need an explicit k
    result = future.evaluate_future(_shop(), one, D, 5, k=2)
    platform = result.methods.set_index("method").loc["platform"]
    assert (platform["eta2"], platform["churn_auc"]) == (0.0, 0.5)


def test_more_than_ten_platform_segments_caps_the_baselines():
    rows = [(f"o{i}", f"u{i}", f"2024-01-{1 + i % 9:02d} 12:00+00:00", 5.0 + i * i, "completed")
            for i in range(12)]
    result = future.evaluate_future(orders(*rows), labels({f"u{i}": f"s{i}" for i in range(11)}), D, 5)
    assert (result.platform_k, result.k, result.capped) == (11, 10, True)
    assert "capped at k=10" in future.format_report(result)


def test_no_population_and_bad_arguments():
    late = orders(("o1", "u1", "2024-01-11 00:00+00:00", 1.0, "completed"),
                  ("o2", "u2", "2024-01-09 00:00+00:00", 1.0, "cancelled"))
    with pytest.raises(future.NoPopulation, match="no customer has a completed order by the end of 2024-01"):
        future.evaluate_future(late, labels({"u1": "a"}), D, 5)
    with pytest.raises(future.NoPopulation, match="k=7 segments from 6 customers"):
        future.evaluate_future(_shop(), labels({"u1": "a", "u2": "b"}), D, 5, k=7)
    with pytest.raises(PlatformError, match="k must be at least 2"):
        future.evaluate_future(_shop(), labels({"u1": "a", "u2": "b"}), D, 5, k=1)
    with pytest.raises(ValueError, match="lacks columns"):
        future.evaluate_future(_shop().drop(columns="status"), labels({}), D, 5)


def _write_orders(ds: str) -> None:
    """One completed order of u1 at noon of ``ds``, arrived on ``ds``."""
    row = {"order_id": f"o{ds}", "user_id": "u1", "order_ts": dt.datetime.fromisoformat(f"{ds}T12:00+00:00"),
           "amount": 1.0, "item_count": 1, "discount_amount": 0.0, "status": "completed"}
    write_arrow("raw.orders", pa.Table.from_pylist([row], table("raw.orders").arrow_schema()), ds)


def test_missing_partitions_are_named(platform_home):
    with pytest.raises(TableNotFound, match="segments.user_segments has no partition ds=2024-01-10") as exc:
        future.load_inputs(D, 5)
    assert "segments score --ds 2024-01-10" in exc.value.hint
    user_segments = table("segments.user_segments").arrow_schema()
    write_arrow("segments.user_segments", pa.Table.from_pylist(
        [{"user_id": "u1", "segment_id": 0, "segment_name": "a"}], user_segments), D)
    for ds in ("2024-01-09", "2024-01-10", "2024-01-11", "2024-01-13"):
        _write_orders(ds)
    # Window 01-11 .. 01-15: 01-12, 01-14 and 01-15 have not arrived.
    missing = r"lacks 3 of the 5 days after the cutoff 2024-01-10 \(needed up to 2024-01-15\): missing " \
              r"2024-01-12, 2024-01-14 \.\. 2024-01-15"
    with pytest.raises(TableNotFound, match=missing):
        future.load_inputs(D, 5)
    got_orders, got_labels = future.load_inputs(D, 1)  # reads every partition up to 01-11
    assert sorted(got_orders["order_id"]) == ["o2024-01-09", "o2024-01-10", "o2024-01-11"]
    assert got_labels[["user_id", "segment_name"]].values.tolist() == [["u1", "a"]]
    assert np.isclose(future.customer_outcomes(got_orders, D, 1).loc["u1", "future_spend"], 1.0)

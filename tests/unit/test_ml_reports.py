"""Evaluation artifacts and the feature-selection report (ml/reports.py): tiny inputs, no Spark, no TF."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ml import reports


def test_per_segment_report_matches_hand_counts():
    # Six users: true 0 0 0 1 1 2, predicted 0 0 1 1 1 0.
    # seg 0: predicted at users 1,2,6 (2 right) -> precision 2/3; truly 0: users 1,2,3 (2 found) -> recall 2/3
    # seg 1: predicted at users 3,4,5 (2 right) -> precision 2/3; truly 1: users 4,5 (both found) -> recall 1,
    #        f1 = 2 * 2/3 * 1 / (2/3 + 1) = 0.8
    # seg 2: never predicted -> precision 0 (no warning), recall 0, f1 0, support 1
    table = reports.per_segment_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0], ["loyal", "at risk", "new"])
    assert table.index.to_list() == [0, 1, 2, "macro avg"]
    assert table["segment"].to_list() == ["loyal", "at risk", "new", "macro avg"]
    np.testing.assert_allclose(table["precision"], [2 / 3, 2 / 3, 0, 4 / 9])
    np.testing.assert_allclose(table["recall"], [2 / 3, 1, 0, 5 / 9])
    np.testing.assert_allclose(table["f1"], [2 / 3, 0.8, 0, (2 / 3 + 0.8) / 3])
    assert table["support"].to_list() == [3, 2, 1, 6]  # macro row: all users


def test_per_segment_report_rejects_bad_inputs():
    with pytest.raises(ValueError, match="y_true has 3 labels but y_pred has 2"):
        reports.per_segment_report([0, 1, 1], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match=r"segment ids \[2\] outside 0..1"):
        reports.per_segment_report([0, 1, 2], [0, 1, 1], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        reports.per_segment_report([], [], ["a"])


def _labelled_features(n: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    labels = np.repeat([0, 1, 2], n // 3)
    X = pd.DataFrame({
        "noise": rng.normal(size=n),  # independent of the label
        "informative": labels * 10.0 + rng.normal(size=n),  # label shifted far apart: near-perfect signal
        "constant": 5.0,
        "is_member": labels == 2,  # boolean, scored as a 0/1 discrete feature
        "city": "tier1",  # non-numeric: skipped
    })
    return X, labels


def test_feature_selection_ranks_signal_over_noise_and_zeroes_constants():
    X, labels = _labelled_features()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # constant column must not trigger 0/0 RuntimeWarnings
        report = reports.feature_selection_report(X, labels, seed=0)
    assert list(report.columns) == ["feature", "mutual_info", "chi2", "chi2_p"]
    assert report["feature"].iloc[0] == "informative"
    assert report["mutual_info"].is_monotonic_decreasing
    by_name = report.set_index("feature")
    # 3 equal classes separated by 10 sd: MI is close to its ceiling ln(3) ~ 1.10 nats.
    assert by_name.loc["informative", "mutual_info"] > 0.9
    assert by_name.loc["noise", "mutual_info"] < 0.1
    assert by_name.loc["is_member", "mutual_info"] > by_name.loc["noise", "mutual_info"]
    assert by_name.loc["informative", "chi2_p"] < 1e-6 < by_name.loc["noise", "chi2_p"]
    assert tuple(by_name.loc["constant", ["mutual_info", "chi2", "chi2_p"]]) == (0.0, 0.0, 1.0)
    assert report.attrs == {"rows_used": 300, "skipped_columns": ["city"]}


def test_feature_selection_samples_rows_deterministically(monkeypatch):
    monkeypatch.setattr(reports, "FEATURE_SELECTION_MAX_ROWS", 120)
    X, labels = _labelled_features(300)
    first = reports.feature_selection_report(X, labels, seed=3)
    again = reports.feature_selection_report(X, labels, seed=3)
    assert first.attrs["rows_used"] == 120
    pd.testing.assert_frame_equal(first, again)  # same seed, same sample, same estimates


def test_feature_selection_fills_missing_values():
    # One NaN and one inf in a feature take its median instead of failing sklearn's finite check.
    X = pd.DataFrame({"x": [1.0, np.nan, 3.0, np.inf, 10.0, 11.0, 12.0, 13.0]})
    report = reports.feature_selection_report(X, [0, 0, 0, 0, 1, 1, 1, 1])
    assert np.isfinite(report[["mutual_info", "chi2", "chi2_p"]].to_numpy()).all()


def test_feature_selection_rejects_bad_inputs():
    X, labels = _labelled_features()
    with pytest.raises(ValueError, match="X has 300 rows but labels has shape"):
        reports.feature_selection_report(X, labels[:-1])
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        reports.feature_selection_report(X, np.zeros(300))
    with pytest.raises(ValueError, match="no numeric columns"):
        reports.feature_selection_report(X[["city"]], labels)


def _assert_png(path) -> None:
    assert path.exists() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0


def test_every_plot_writes_a_readable_png(tmp_path):
    names = ["loyal", "at risk", "new"]
    _assert_png(reports.confusion_matrix_png([0, 0, 1, 2], [0, 1, 1, 2], names, tmp_path / "cm.png"))
    profiles = pd.DataFrame(
        {"revenue_30d": [250.0, 20.0, 60.0], "sessions_30d": [12, 3, 8], "top_category": ["a", "b", "c"]},
        index=names,
    )
    _assert_png(reports.profile_heatmap_png(profiles, tmp_path / "profiles.png"))
    _assert_png(reports.segment_sizes_png({"loyal": 120, "at risk": 30, "new": 0}, tmp_path / "sizes.png"))
    history = {"loss": [1.0, 0.6, 0.5], "val_loss": [1.1, 0.7, 0.75], "accuracy": [0.5, 0.8, 0.85],
               "val_accuracy": [0.5, 0.75, 0.74], "learning_rate": [1e-3] * 3}
    _assert_png(reports.training_curves_png(history, tmp_path / "curves.png"))
    _assert_png(reports.k_selection_png([4, 2, 3], [0.3, 0.4, 0.5], [80.0, 200.0, 120.0], 3,
                                        str(tmp_path / "nested" / "k.png")))  # str path, new folder
    X, labels = _labelled_features()
    report = reports.feature_selection_report(X, labels)
    _assert_png(reports.feature_selection_png(report, tmp_path / "fs.png", top=2))


def test_plots_close_their_figures(tmp_path):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    reports.segment_sizes_png({"a": 1}, tmp_path / "a.png")
    assert len(plt.get_fignums()) == before


def test_plots_reject_wrong_shapes(tmp_path):
    out = tmp_path / "x.png"
    with pytest.raises(ValueError, match="y_true has 2 labels but y_pred has 1"):
        reports.confusion_matrix_png([0, 1], [0], ["a", "b"], out)
    with pytest.raises(ValueError, match="at least one segment name"):
        reports.confusion_matrix_png([0], [0], [], out)
    with pytest.raises(ValueError, match="one numeric feature column"):
        reports.profile_heatmap_png(pd.DataFrame({"name": ["x"]}, index=["a"]), out)
    with pytest.raises(ValueError, match="sizes is empty"):
        reports.segment_sizes_png({}, out)
    with pytest.raises(ValueError, match="non-negative"):
        reports.segment_sizes_png({"a": -1}, out)
    with pytest.raises(ValueError, match="no non-empty series"):
        reports.training_curves_png({"loss": []}, out)
    with pytest.raises(ValueError, match="equal length, got 3, 2 and 3"):
        reports.k_selection_png([2, 3, 4], [0.1, 0.2], [1.0, 2.0, 3.0], 3, out)
    with pytest.raises(ValueError, match="chosen_k=5 is not one of"):
        reports.k_selection_png([2, 3], [0.1, 0.2], [1.0, 2.0], 5, out)
    with pytest.raises(ValueError, match="report needs columns"):
        reports.feature_selection_png(pd.DataFrame({"feature": ["a"]}), out)
    with pytest.raises(ValueError, match="top must be >= 1"):
        reports.feature_selection_png(
            pd.DataFrame({"feature": ["a"], "mutual_info": [0.1], "chi2": [1.0], "chi2_p": [0.5]}), out, top=0
        )
    assert not out.exists()

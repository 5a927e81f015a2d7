"""The ablation table renders one row per configuration with the method x metric columns."""

from __future__ import annotations

import pandas as pd

from ml.ablation import COLUMNS, to_markdown


def test_markdown_table_formats_each_kind_of_cell():
    row = {key: 0.5 for key in COLUMNS} | {"method": "rfm_kmeans", "k": 6.0, "k_silhouette_best": 5.0,
                                             "teacher_seconds": 12.4, "cold_start_macro_f1": float("nan")}
    table = pd.DataFrame([row], columns=list(COLUMNS))
    table.attrs.update(ds="2026-06-30", users=100, holdout=20, epochs=15, seed=42, k_mode="fixed", cold_start=3)
    text = to_markdown(table, "segments evaluate --ds 2026-06-30")
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| method"))
    assert header.count("|") == len(COLUMNS) + 1 and "teacher ARI" in header
    # k as integers, seconds rounded, a missing metric as n/a, other metrics with 3 decimals.
    assert "| rfm_kmeans | 6 | 5 | 0.500 | 0.500 | 0.500 | 0.500 | n/a |" in text
    assert "| 12 | 0 |" in text and "100 users (20 held out, 3 of them cold-start" in text

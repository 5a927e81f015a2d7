"""Ablation: every teacher method trained and evaluated the same way on one ds -> a markdown table.

For each method: teacher + student with the run's seed (quality, cold start, time), then again with
another seed (retrain stability = ARI between the two students' labels of all users, and the same for
the two teachers). Optionally the default method once more with an N-seed ensemble student, to show what
averaging buys in F1 and stability. No MLflow, no registry: the stages are ml/train.py's own functions.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ml.evaluation import retrain_stability
from ml.teacher import METHODS

COLUMNS: dict[str, str] = {  # result key -> table header
    "method": "method",
    "k": "k",
    "k_silhouette_best": "k by silhouette",
    "teacher_persona_ari": "teacher ARI",
    "teacher_persona_nmi": "teacher NMI",
    "teacher_silhouette": "silhouette",
    "holdout_macro_f1": "student macro-F1",
    "cold_start_macro_f1": "cold-start F1",
    "student_persona_ari": "student ARI",
    "retrain_student_ari": "retrain ARI (student)",
    "retrain_teacher_ari": "retrain ARI (teacher)",
    "teacher_seconds": "teacher s",
    "student_seconds": "student s",
}


def _fit_once(prep, method: str, k: int | None, k_range: tuple[int, int], seed: int, epochs: int,
              n_models: int, personas: pd.DataFrame | None) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    from ml.teacher import run_teacher
    from ml.train import evaluate, train_student

    start = time.monotonic()
    teacher = run_teacher(prep.pre, prep.static, prep.seq, k, seed, method, k_range)
    teacher_seconds = time.monotonic() - start
    student = train_student(prep, teacher.labels, teacher.k, epochs, seed, n_models)
    result = evaluate(prep, teacher, teacher.labels, teacher.k, student.model, personas)
    metrics = dict(result.metrics)
    metrics.update(teacher_seconds=teacher_seconds, student_seconds=student.seconds)
    return metrics, teacher.labels, result.predicted


def run_ablation(
    ds: str,
    methods: Sequence[str] = METHODS,
    ensemble: int = 0,
    epochs: int | None = None,
    seed: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> pd.DataFrame:
    """One row per method (plus '<default> + N-seed ensemble' when ``ensemble`` > 1)."""
    from ml.evaluation import load_personas
    from ml.train import load_checked, prepare, run_config

    config = run_config(epochs=epochs, seed=seed)
    s, epochs, seed = config.settings, config.epochs, config.seed
    df = load_checked(ds, s)
    prep = prepare(df)
    personas = load_personas()
    plan = [(m, 1) for m in methods]
    if ensemble > 1:
        plan.append((config.method, ensemble))
    rows = []
    for method, n_models in plan:
        label = method if n_models == 1 else f"{method} + {n_models}-seed ensemble"
        progress(f"{label}: seed {seed}")
        first, teacher_a, student_a = _fit_once(prep, method, s.n_segments, s.k_range, seed, epochs, n_models,
                                                personas)
        progress(f"{label}: seed {seed + 1} (retrain stability)")
        _, teacher_b, student_b = _fit_once(prep, method, s.n_segments, s.k_range, seed + 1, epochs, n_models,
                                            personas)
        first.update(retrain_student_ari=retrain_stability(student_a, student_b),
                     retrain_teacher_ari=retrain_stability(teacher_a, teacher_b))
        rows.append({"method": label, **{key: first.get(key, float("nan")) for key in COLUMNS if key != "method"}})
        progress(f"{label}: " + ", ".join(f"{key}={rows[-1][key]:.3f}" for key in
                                          ("teacher_persona_ari", "holdout_macro_f1", "retrain_student_ari")))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.attrs.update(ds=ds, users=len(df), holdout=int(prep.hold.sum()), epochs=epochs, seed=seed,
                       k_mode=config.k_mode, cold_start=int(first.get("cold_start_users", 0)))
    return table


def to_markdown(table: pd.DataFrame, command: str) -> str:
    """The table with a header saying what was run on which data."""
    a = table.attrs
    lines = [
        "# Segmentation ablation",
        "",
        f"Command: `{command}`  ",
        f"Data: features.user_features ds={a.get('ds')}, {a.get('users')} users "
        f"({a.get('holdout')} held out, {a.get('cold_start')} of them cold-start: < 7 active days); "
        f"k: {a.get('k_mode')}; student max epochs {a.get('epochs')}; seeds {a.get('seed')} and "
        f"{a.get('seed', 0) + 1}.",
        "",
        "ARI/NMI are against the planted personas (synthetic data; evaluation only). Student metrics are "
        "against the method's own teacher on held-out users. Retrain ARI compares two trainings with "
        "different seeds on all users. Seconds are wall time on a shared 2-core machine.",
        "",
    ]
    header = [COLUMNS[c] for c in table.columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for _, row in table.iterrows():
        cells = []
        for col in table.columns:
            value = row[col]
            if isinstance(value, str):
                cells.append(value)
            elif col in ("k", "k_silhouette_best"):
                cells.append("" if pd.isna(value) else str(int(value)))
            elif col.endswith("seconds"):
                cells.append(f"{value:.0f}")
            else:
                cells.append("n/a" if pd.isna(value) else f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

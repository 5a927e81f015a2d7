"""Training: teacher segments -> names -> LSTM student (ensemble) -> evaluation -> MLflow -> gate.

Reads features.user_features for one ds through the catalog (Arrow, no Spark). Prints nothing: the CLI
reports the returned ``TrainResult``. The stages (``run_config``, ``load_checked``, ``prepare``,
``run_teacher``, ``train_student``, ``evaluate``) are plain functions so the ablation (ml/ablation.py)
runs the same code without MLflow.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import settings as settings_mod
from core.errors import PlatformError
from core.model_registry import CHALLENGER, configure_mlflow, mlflow_client
from ml.data import contract_for, fit_preprocessor, trained_families
from ml.evaluation import (
    classification_metrics,
    cold_start_mask,
    day_to_day_stability,
    holdout_rows,
    is_holdout,
    load_personas,
    persona_agreement,
    stability_reference,
    user_rows,
)
from ml.gate import GateDecision, gate_metrics, run_gate
from ml.identity import Alignment, align_with_champion
from ml.model import LSTM_UNITS, StudentHistory, ensemble_seeds, fit_ensemble
from ml.naming import as_mapping, names_from_features, score_table
from ml.profiles import segment_profiles
from ml.runtime.network import predict_proba
from ml.runtime.preprocessor import Preprocessor
from ml.teacher import TeacherResult, run_teacher


class NotEnoughUsers(PlatformError, ValueError):
    """The partition is too small to form and evaluate the configured number of segments."""

    hint = "seed or ingest more users, or lower SEGMENTS_N_SEGMENTS (or the top of SEGMENTS_K_RANGE)"


@dataclass
class TrainResult:
    run_id: str
    model_version: int
    metrics: dict[str, float]
    promoted: bool
    reason: str
    segment_sizes: dict[str, int]  # segment name -> users (all users of ds, teacher labels)
    segments: dict[int, str] = field(default_factory=dict)  # segment id -> name
    champion_version: int | None = None  # after the gate
    method: str = ""
    per_segment: pd.DataFrame | None = None  # held-out precision/recall/F1 per segment


def min_users(k: int) -> int:
    return max(50, 10 * k)


# --- stages --------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """One ds of features as arrays, with the deterministic hold-out split."""

    df: pd.DataFrame  # sorted by user_id, one row per user
    hold: np.ndarray  # bool [N]
    pre: Preprocessor  # fitted on training users only
    static: np.ndarray
    seq: np.ndarray

    @property
    def train_mask(self) -> np.ndarray:
        return ~self.hold


def load_features(ds: str) -> pd.DataFrame:
    """features.user_features for ds, one row per user, sorted by user_id."""
    # Row order of a Parquet read is not a contract; sorting makes the whole run reproducible.
    return user_rows(ds).sort_values("user_id").reset_index(drop=True)


def check_users(n_users: int, k: int | None, k_range: tuple[int, int], ds: str) -> None:
    """NotEnoughUsers unless ``n_users`` can form and evaluate the largest k that may be tried."""
    largest = k if k is not None else k_range[1]
    what = f"{k} segments" if k is not None else f"up to {largest} segments (SEGMENTS_K_RANGE)"
    if n_users < largest:
        raise NotEnoughUsers(f"features.user_features ds={ds} has {n_users} users: k={largest} is larger than "
                             f"the number of users")
    if n_users < min_users(largest):
        raise NotEnoughUsers(
            f"features.user_features ds={ds} has {n_users} users; training {what} needs at least "
            f"{min_users(largest)}"
        )


def prepare(df: pd.DataFrame) -> Prepared:
    hold = is_holdout(df["user_id"])
    # Preprocessing statistics come from training users only, so held-out metrics are honest.
    numeric, categorical, channels = contract_for(settings_mod.load().raw_tables)  # absent families left out
    pre = fit_preprocessor(df[~hold], numeric, categorical, channels)
    static, seq = pre.to_arrays(df)
    return Prepared(df, hold, pre, static, seq)


@dataclass
class Student:
    model: Any  # one Keras model (an ensemble is averaged inside it)
    histories: list[StudentHistory]
    seeds: list[int]
    seconds: float


def train_student(
    prep: Prepared, labels: np.ndarray, k: int, epochs: int, seed: int, n_models: int = 1, verbose: int = 0
) -> Student:
    start = time.monotonic()
    seeds = ensemble_seeds(seed, n_models)
    tm = prep.train_mask
    model, histories = fit_ensemble(prep.static[tm], prep.seq[tm], labels[tm], k, epochs, seeds, verbose=verbose)
    return Student(model, histories, seeds, time.monotonic() - start)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    predicted: np.ndarray  # student's segment for every user of the partition
    per_segment: pd.DataFrame | None = None


def evaluate(
    prep: Prepared,
    teacher: TeacherResult,
    labels: np.ndarray,
    k: int,
    model: Any,
    personas: pd.DataFrame | None,
    names: list[str] | None = None,
) -> Evaluation:
    """Student vs teacher on held-out users (all, cold-start), both vs planted personas, teacher quality."""
    hold = prep.hold
    predicted = predict_proba(model, prep.static, prep.seq).argmax(axis=1).astype(np.int32)
    metrics: dict[str, float] = {
        f"holdout_{n}": v for n, v in classification_metrics(labels[hold], predicted[hold], k).items()
    }
    cold = cold_start_mask(prep.df) & hold
    metrics.update({f"cold_start_{n}": v
                    for n, v in classification_metrics(labels[cold], predicted[cold], k, present_only=True).items()})
    metrics["cold_start_users"] = float(cold.sum())
    metrics["train_accuracy"] = float((predicted[~hold] == labels[~hold]).mean())
    metrics["k"] = float(k)
    metrics["teacher_silhouette"] = teacher.silhouette
    metrics["teacher_inertia"] = teacher.inertia
    if teacher.k_selection is not None:
        sel = teacher.k_selection
        best = np.nan_to_num(np.array(sel.silhouettes, dtype=float), nan=-np.inf)
        metrics["k_silhouette_best"] = float(sel.ks[int(np.argmax(best))]) if sel.ks else float("nan")
    metrics["n_users"] = float(len(prep.df))
    metrics["n_holdout_users"] = float(hold.sum())
    for seg in range(k):
        metrics[f"segment_{seg}_users"] = float((labels == seg).sum())
        metrics[f"segment_{seg}_holdout_users"] = float((labels[hold] == seg).sum())
        metrics[f"segment_{seg}_holdout_predicted"] = float((predicted[hold] == seg).sum())
    if personas is not None:  # synthetic ground truth, evaluation only
        users = prep.df["user_id"]
        for prefix, who, lab in (
            ("teacher_persona", users, labels),
            ("student_persona", users[hold], predicted[hold]),
        ):
            for name, value in persona_agreement(who, lab, personas).items():
                if name != "users":
                    metrics[f"{prefix}_{name}"] = value
    per_segment = None
    if names is not None:
        from ml.reports import per_segment_report

        per_segment = per_segment_report(labels[hold], predicted[hold], names)
    return Evaluation(metrics, predicted, per_segment)


def previous_day_stability(ds: str, pre: Preprocessor, model: Any, holdout_today: pd.DataFrame,
                           predicted_today: np.ndarray) -> dict[str, float]:
    """Training's day-to-day stability metric (``ml.evaluation.day_to_day_stability``, as the gate computes
    it): {} when features.user_features has no partition before ds."""
    reference = stability_reference(ds)
    if reference is None:
        return {}
    before = holdout_rows(reference)
    static, seq = pre.to_arrays(before)
    labels_before = predict_proba(model, static, seq).argmax(axis=1)
    share, users = day_to_day_stability(before["user_id"], labels_before, holdout_today["user_id"], predicted_today)
    return {} if share is None else {"day_to_day_stability": share, "day_to_day_users": float(users)}


# --- the training command ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunConfig:
    """The settings one training runs with: ``core.settings`` plus the caller's overrides."""

    settings: settings_mod.Settings
    method: str
    epochs: int
    seed: int

    @property
    def k_mode(self) -> str:
        """How k is chosen, as logged: 'fixed' or 'silhouette <low>-<high>'."""
        s = self.settings
        return "fixed" if s.n_segments is not None else f"silhouette {s.k_range[0]}-{s.k_range[1]}"


def run_config(method: str | None = None, epochs: int | None = None, seed: int | None = None) -> RunConfig:
    """Load the settings; a ``None`` argument keeps the setting (segment method, train epochs, seed)."""
    s = settings_mod.load()
    return RunConfig(
        settings=s,
        method=s.segment_method if method is None else method,
        epochs=s.train_epochs if epochs is None else int(epochs),
        seed=s.seed if seed is None else int(seed),
    )


def load_checked(ds: str, s: settings_mod.Settings) -> pd.DataFrame:
    """``load_features(ds)``, or NotEnoughUsers when they are too few for the k the settings may try."""
    df = load_features(ds)
    check_users(len(df), s.n_segments, s.k_range, ds)
    return df


@dataclass
class Segmentation:
    """The teacher's segments after identity matching, and their names: what the student learns."""

    teacher: TeacherResult
    identity: Alignment  # .labels: segment id of every user, on the champion's ids
    k: int
    profiles: pd.DataFrame  # naming profiles of segments 0..k-1 (logged as segment_profiles.csv)
    segments: dict[str, dict[str, str]]  # str(segment id) -> {name, action}
    teacher_seconds: float

    @property
    def labels(self) -> np.ndarray:
        return self.identity.labels

    @property
    def names(self) -> list[str]:
        """``names[i]``: the name of segment id i."""
        return [self.segments[str(seg)]["name"] for seg in range(self.k)]


def train(
    ds: str,
    epochs: int | None = None,
    seed: int | None = None,
    verbose: int = 0,
    method: str | None = None,
) -> TrainResult:
    """Train, log, register and gate a segmenter on features.user_features for ``ds``.

    ``verbose`` is passed to Keras fit (0 silent, 2 one line per epoch for job logs).
    """
    config = run_config(method, epochs, seed)
    df = load_checked(ds, config.settings)
    started = time.monotonic()
    prep = prepare(df)
    segmentation = _segment(prep, config, started, verbose)
    student, result = _train_and_evaluate(ds, prep, segmentation, config, started, verbose)
    run_id, version, decision = _log_and_register(ds, config, prep, segmentation, student, result)
    labels, names = segmentation.labels, segmentation.names
    return TrainResult(
        run_id=run_id,
        model_version=int(version),
        metrics=result.metrics,
        promoted=decision.promoted,
        reason=decision.reason,
        segment_sizes={name: int((labels == seg).sum()) for seg, name in enumerate(names)},
        segments=dict(enumerate(names)),
        champion_version=int(decision.champion),
        method=config.method,
        per_segment=result.per_segment,
    )


def _segment(prep: Prepared, config: RunConfig, started: float, verbose: int) -> Segmentation:
    """Teacher clusters -> the champion's segment ids -> names (teacher time counted from ``started``)."""
    s = config.settings
    teacher = run_teacher(
        prep.pre, prep.static, prep.seq, s.n_segments, config.seed, config.method, s.k_range, verbose=verbose
    )
    teacher_seconds = time.monotonic() - started
    # Segment identity (ml/identity.py): clusters take the champion's ids, close ones keep its names,
    # so BI charts of segment sizes do not jump on a retrain.
    identity = align_with_champion(prep.df, teacher.labels, prep.train_mask)
    labels = identity.labels
    k = max(teacher.k, int(labels.max()) + 1)  # matching may hand out a champion id above the new k
    naming, profiles = names_from_features(prep.df, labels, k)
    segments = identity.names(as_mapping(naming), score_table(profiles))
    return Segmentation(teacher, identity, k, profiles, segments, teacher_seconds)


def _train_and_evaluate(
    ds: str, prep: Prepared, segmentation: Segmentation, config: RunConfig, started: float, verbose: int
) -> tuple[Student, Evaluation]:
    """The student on ``segmentation``, evaluated; its metrics also hold day-to-day stability and timings."""
    labels, k, teacher = segmentation.labels, segmentation.k, segmentation.teacher
    n_models = config.settings.ensemble_seeds
    student = train_student(prep, labels, k, config.epochs, config.seed, n_models, verbose)
    result = evaluate(prep, teacher, labels, k, student.model, load_personas(), segmentation.names)
    metrics = result.metrics
    hold = prep.hold
    metrics.update(previous_day_stability(ds, prep.pre, student.model, prep.df[hold], result.predicted[hold]))
    metrics["teacher_seconds"] = segmentation.teacher_seconds
    metrics["student_seconds"] = student.seconds
    metrics["train_seconds"] = time.monotonic() - started
    metrics["best_val_loss"] = float(np.mean([h.best_val_loss for h in student.histories]))
    metrics["epochs_run"] = float(np.mean([h.epochs_run for h in student.histories]))
    metrics.update({key: float(v) for key, v in teacher.info.items() if isinstance(v, (int, float))})
    return student, result


def _log_and_register(
    ds: str,
    config: RunConfig,
    prep: Prepared,
    segmentation: Segmentation,
    student: Student,
    result: Evaluation,
) -> tuple[str, str, GateDecision]:
    """One MLflow run: params, metrics, artifacts, the registered challenger and the gate's decision.

    Returns (run id, model version, decision); the gate's metrics are added to ``result.metrics``.
    """
    import mlflow

    s = config.settings
    metrics = result.metrics
    configure_mlflow()
    client = mlflow_client()
    with mlflow.start_run(run_name=f"train-{ds}") as run:
        mlflow.log_params(_params(ds, config, prep, segmentation, student))
        mlflow.log_metrics(metrics)
        _log_artifacts(ds, prep, segmentation, student, result, config.seed)
        f1 = metrics["holdout_macro_f1"]
        version = _register(client, s.model_name, ds, prep, segmentation, student.model, f1)
        # segment_identity.json: this model's profiles, for the next retrain to match against.
        segmentation.identity.log(prep.df, segmentation.segments)
        mlflow.set_tag("model_version", version)
        # Gate (ml/gate.py): macro-F1 and day-to-day stability vs the champion; logs tags + gate.json.
        decision = run_gate(
            client,
            s.model_name,
            version,
            f1,
            prep.df[prep.hold].reset_index(drop=True),
            segmentation.labels[prep.hold],
            segmentation.k,
            ds,
        )
        metrics.update(gate_metrics(decision))
    return run.info.run_id, version, decision


def _params(
    ds: str, config: RunConfig, prep: Prepared, segmentation: Segmentation, student: Student
) -> dict[str, Any]:
    """The run's MLflow params: data, method, k, training settings and input sizes."""
    return {
        "ds": ds,
        "method": config.method,
        "k": segmentation.k,
        "k_mode": config.k_mode,
        "epochs": config.epochs,
        "seed": config.seed,
        "ensemble_seeds": len(student.seeds),
        "n_users": len(prep.df),
        "n_train_users": int(prep.train_mask.sum()),
        "lstm_units": LSTM_UNITS,
        "n_static_features": prep.pre.n_static,
        "sequence_channels": len(prep.pre.channels),
        "teacher_features": len(segmentation.teacher.feature_names),
        # What the model was trained on: a purchase-only shop's model has no clickstream families.
        "raw_tables": ",".join(settings_mod.load().raw_tables),
        "feature_families": ",".join(trained_families(prep.pre)),
    }


def _log_artifacts(
    ds: str, prep: Prepared, segmentation: Segmentation, student: Student, result: Evaluation, seed: int
) -> None:
    """Tags, segment names, training histories, teacher facts, profiles and reports of the active run."""
    import mlflow

    segments = segmentation.segments
    mlflow.set_tags({"ds": ds, "segments": json.dumps({int(i): v["name"] for i, v in segments.items()})})
    mlflow.log_dict(segments, "segments.json")
    mlflow.log_dict(
        {"members": [{"seed": sd, "history": h.history, "best_epoch": h.best_epoch}
                     for sd, h in zip(student.seeds, student.histories)]},
        "training_history.json",
    )
    mlflow.log_dict(_teacher_report(segmentation.teacher), "teacher.json")
    mlflow.log_text(segmentation.profiles.to_csv(), "segment_profiles.csv")
    _log_reports(prep, segmentation, result, student.histories[0].history, seed)


def _register(
    client: Any, model_name: str, ds: str, prep: Prepared, segmentation: Segmentation, model: Any,
    macro_f1: float,
) -> str:
    """Log the pyfunc (ml/pyfunc.py), register it as ``model_name``'s challenger; returns the version."""
    from ml.pyfunc import log_segmenter

    info = log_segmenter(
        name="segmenter",
        keras_model=model,
        preprocessor=prep.pre,
        segments=segmentation.segments,
        example=prep.df,
        registered_model_name=model_name,
        metadata_extra={"ds": ds, "k": segmentation.k},
    )
    version = str(info.registered_model_version)
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    client.set_model_version_tag(model_name, version, "ds", ds)
    client.set_model_version_tag(model_name, version, "holdout_macro_f1", f"{macro_f1:.6f}")
    return version


def _teacher_report(teacher: TeacherResult) -> dict[str, Any]:
    sel = teacher.k_selection
    return {
        "method": teacher.method,
        "k": teacher.k,
        "silhouette": teacher.silhouette,
        "feature_names": teacher.feature_names,
        "k_selection": None if sel is None else {"ks": sel.ks, "silhouettes": sel.silhouettes,
                                                 "inertias": sel.inertias, "chosen": sel.chosen,
                                                 "fixed": sel.fixed},
        **{key: value for key, value in teacher.info.items() if key != "autoencoder_history"},
    }


def _log_reports(
    prep: Prepared, segmentation: Segmentation, result: Evaluation, history: dict[str, list[float]], seed: int
) -> None:
    """Plots and tables (ml/reports.py) as artifacts of the active run, under reports/."""
    import mlflow

    from ml import reports

    hold, labels, names, teacher = prep.hold, segmentation.labels, segmentation.names, segmentation.teacher
    with tempfile.TemporaryDirectory(prefix="reports-") as tmp:
        out = Path(tmp)
        reports.confusion_matrix_png(labels[hold], result.predicted[hold], names, out / "confusion_matrix.png")
        numeric = [c for c in prep.pre.numeric if c in prep.df.columns]
        profiles = segment_profiles(prep.df, labels, numeric)
        profiles.index = [names[i] for i in profiles.index]
        reports.profile_heatmap_png(profiles, out / "segment_profiles.png")
        sizes = {names[seg]: int((labels == seg).sum()) for seg in range(len(names))}
        reports.segment_sizes_png(sizes, out / "segment_sizes.png")
        reports.training_curves_png(history, out / "training_curves.png")
        if "autoencoder_history" in teacher.info:
            reports.training_curves_png(teacher.info["autoencoder_history"], out / "autoencoder_curves.png")
        sel = teacher.k_selection
        if sel is not None and sel.ks:
            reports.k_selection_png(sel.ks, sel.silhouettes, sel.inertias, sel.chosen, out / "k_selection.png")
        selection = reports.feature_selection_report(prep.df[numeric], labels, seed)
        selection.to_csv(out / "feature_selection.csv", index=False)
        reports.feature_selection_png(selection, out / "feature_selection.png")
        if result.per_segment is not None:
            result.per_segment.to_csv(out / "per_segment_report.csv", index=False)
        mlflow.log_artifacts(str(out), "reports")

"""Daily training: teacher K-means -> names -> LSTM student -> held-out evaluation -> MLflow -> gate.

Reads features.user_features for one ds through the catalog (Arrow, no Spark). Prints nothing: the CLI
reports the returned ``TrainResult``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from ml.data import fit_preprocessor
from segments.errors import PlatformError
from ml.evaluation import classification_metrics, is_holdout, load_personas, persona_agreement
from ml.model import LSTM_UNITS, fit_student, predict_proba
from ml.naming import as_mapping, names_from_features
from ml.registry import CHALLENGER, promote_if_better
from ml.teacher import TRAJECTORY_WEIGHT, run_teacher


class NotEnoughUsers(PlatformError, ValueError):
    """The partition is too small to form and evaluate the configured number of segments."""

    hint = "seed or ingest more users, or lower SEGMENTS_N_SEGMENTS"


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


def min_users(k: int) -> int:
    return max(50, 10 * k)


def train(
    ds: str,
    epochs: int | None = None,
    seed: int | None = None,
    verbose: int = 0,
) -> TrainResult:
    """Train, log, register and gate a segmenter on features.user_features for ``ds``.

    ``verbose`` is passed to Keras fit (0 silent, 2 one line per epoch for job logs).
    """
    import mlflow

    from segments import settings as settings_mod
    from segments.catalog import read_pandas
    from segments.tracking import configure_mlflow, mlflow_client

    s = settings_mod.load()
    k = s.n_segments
    epochs = s.train_epochs if epochs is None else int(epochs)
    seed = s.seed if seed is None else int(seed)

    df = read_pandas("features.user_features", ds)
    df = df[df["user_id"].notna()].drop_duplicates("user_id")
    # Row order of a Parquet read is not a contract; sorting makes the whole run reproducible.
    df = df.sort_values("user_id").reset_index(drop=True)
    if len(df) < min_users(k):
        raise NotEnoughUsers(
            f"features.user_features ds={ds} has {len(df)} users; training {k} segments needs at least "
            f"{min_users(k)}"
        )
    hold = is_holdout(df["user_id"])
    train_mask = ~hold

    # Preprocessing statistics come from training users only, so held-out metrics are honest.
    pre = fit_preprocessor(df[train_mask])
    static, seq = pre.to_arrays(df)
    teacher = run_teacher(pre, static, seq, k, seed)
    labels = teacher.labels
    naming, profiles = names_from_features(df, labels, k)
    segments = as_mapping(naming)

    model, history = fit_student(
        static[train_mask], seq[train_mask], labels[train_mask], k, epochs, seed, verbose=verbose
    )
    holdout_pred = predict_proba(model, static[hold], seq[hold]).argmax(axis=1)
    train_pred = predict_proba(model, static[train_mask], seq[train_mask]).argmax(axis=1)

    holdout_metrics = classification_metrics(labels[hold], holdout_pred, k)
    metrics: dict[str, float] = {f"holdout_{name}": value for name, value in holdout_metrics.items()}
    metrics["train_accuracy"] = float((train_pred == labels[train_mask]).mean())
    metrics["best_val_loss"] = history.best_val_loss
    metrics["epochs_run"] = float(history.epochs_run)
    metrics["teacher_inertia"] = teacher.inertia
    metrics["n_users"] = float(len(df))
    metrics["n_holdout_users"] = float(hold.sum())
    for seg in range(k):
        metrics[f"segment_{seg}_users"] = float((labels == seg).sum())
        metrics[f"segment_{seg}_holdout_users"] = float((labels[hold] == seg).sum())
        metrics[f"segment_{seg}_holdout_predicted"] = float((holdout_pred == seg).sum())

    personas = load_personas()  # synthetic ground truth, evaluation only
    if personas is not None:
        for prefix, users, lab in (
            ("teacher_persona", df["user_id"], labels),
            ("student_persona", df["user_id"][hold], holdout_pred),
        ):
            for name, value in persona_agreement(users, lab, personas).items():
                if name != "users":
                    metrics[f"{prefix}_{name}"] = value

    configure_mlflow()
    client = mlflow_client()
    with mlflow.start_run(run_name=f"train-{ds}") as run:
        mlflow.log_params(
            {
                "ds": ds,
                "k": k,
                "epochs": epochs,
                "seed": seed,
                "n_users": len(df),
                "n_train_users": int(train_mask.sum()),
                "lstm_units": LSTM_UNITS,
                "n_static_features": pre.n_static,
                "sequence_channels": len(pre.channels),
                "trajectory_weight": TRAJECTORY_WEIGHT,
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"ds": ds, "segments": json.dumps({int(i): v["name"] for i, v in segments.items()})})
        mlflow.log_dict(segments, "segments.json")
        mlflow.log_dict(
            {"history": history.history, "best_epoch": history.best_epoch}, "training_history.json"
        )
        mlflow.log_text(profiles.to_csv(), "segment_profiles.csv")

        info = _log_model(model, pre, segments, df, s.model_name, ds, k)
        version = str(info.registered_model_version)
        client.set_registered_model_alias(s.model_name, CHALLENGER, version)
        client.set_model_version_tag(s.model_name, version, "ds", ds)
        client.set_model_version_tag(
            s.model_name, version, "holdout_macro_f1", f"{metrics['holdout_macro_f1']:.6f}"
        )

        decision = promote_if_better(
            client,
            s.model_name,
            version,
            metrics["holdout_macro_f1"],
            df[hold].reset_index(drop=True),
            labels[hold],
            k,
        )
        gate = {"gate_promoted": float(decision.promoted), "gate_new_macro_f1": decision.new_macro_f1}
        if decision.champion_macro_f1 is not None:
            gate["gate_champion_macro_f1"] = decision.champion_macro_f1
        mlflow.log_metrics(gate)
        mlflow.set_tags(
            {
                "gate.decision": "promoted" if decision.promoted else "rejected",
                "gate.reason": decision.reason,
                "gate.previous_champion": decision.previous_champion or "",
                "gate.champion": decision.champion,
                "model_version": version,
            }
        )
        metrics.update(gate)

    sizes: dict[str, int] = {
        segments[str(seg)]["name"]: int((labels == seg).sum()) for seg in range(k)
    }
    return TrainResult(
        run_id=run.info.run_id,
        model_version=int(version),
        metrics=metrics,
        promoted=decision.promoted,
        reason=decision.reason,
        segment_sizes=sizes,
        segments={seg: segments[str(seg)]["name"] for seg in range(k)},
        champion_version=int(decision.champion),
    )


def _log_model(
    model: object, pre: object, segments: dict, df: pd.DataFrame, model_name: str, ds: str, k: int
) -> object:
    from ml.pyfunc import log_segmenter

    return log_segmenter(
        name="segmenter",
        keras_model=model,
        preprocessor=pre,  # type: ignore[arg-type]
        segments=segments,
        example=df,
        registered_model_name=model_name,
        metadata_extra={"ds": ds, "k": k},
    )

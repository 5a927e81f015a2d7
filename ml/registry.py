"""Champion/challenger gate over the MLflow model registry (aliases: champion, challenger, previous)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.evaluation import apply_mapping, hungarian_mapping, macro_f1

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"


@dataclass
class GateDecision:
    promoted: bool
    reason: str
    new_macro_f1: float
    champion_macro_f1: float | None  # the incumbent's score on the same held-out users (None: no incumbent)
    previous_champion: str | None  # version that held 'champion' before the decision
    champion: str  # version holding 'champion' after the decision


def _alias_version(client: Any, model_name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def score_model_on(model_uri: str, features: pd.DataFrame, teacher_labels: np.ndarray, k: int) -> float:
    """Macro-F1 of a registered model against today's teacher labels, after Hungarian id matching.

    The model may come from another teacher run whose cluster ids mean something else; matching its ids to
    the new ids on the contingency table measures whether it finds the same groups of users.
    """
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    columns = [c.name for c in model.metadata.get_input_schema().inputs] if model.metadata.signature else None
    frame = features[[c for c in columns if c in features.columns]] if columns else features
    predicted = model.predict(frame)["segment_id"].to_numpy()
    mapped = apply_mapping(predicted, hungarian_mapping(predicted, np.asarray(teacher_labels)))
    return macro_f1(np.asarray(teacher_labels), mapped, k)


def promote_if_better(
    client: Any,
    model_name: str,
    new_version: str | int,
    new_macro_f1: float,
    holdout_features: pd.DataFrame,
    holdout_labels: np.ndarray,
    k: int,
) -> GateDecision:
    """Make ``new_version`` champion if there is none, or if it scores >= the champion on the held-out users.

    On promotion the old champion keeps the alias 'previous' (one-step rollback target).
    """
    new_version = str(new_version)
    incumbent = _alias_version(client, model_name, CHAMPION)
    if incumbent is None:
        client.set_registered_model_alias(model_name, CHAMPION, new_version)
        reason = "no champion yet: first model promoted"
        return GateDecision(True, reason, new_macro_f1, None, None, new_version)
    if incumbent == new_version:
        return GateDecision(False, "version is already champion", new_macro_f1, None, incumbent, incumbent)
    try:
        champion_f1 = score_model_on(f"models:/{model_name}/{incumbent}", holdout_features, holdout_labels, k)
    except Exception as exc:  # noqa: BLE001 - an unscorable champion must not block a working model
        champion_f1 = float("nan")
        reason = f"champion v{incumbent} could not be scored ({type(exc).__name__}: {exc}); promoted"
        promoted = True
    else:
        promoted = bool(new_macro_f1 >= champion_f1)
        verdict = ">=" if promoted else "<"
        reason = (
            f"held-out macro-F1 {new_macro_f1:.4f} {verdict} champion v{incumbent} {champion_f1:.4f}; "
            + ("promoted" if promoted else "kept champion")
        )
    if promoted:
        client.set_registered_model_alias(model_name, PREVIOUS, incumbent)
        client.set_registered_model_alias(model_name, CHAMPION, new_version)
    return GateDecision(
        promoted, reason, new_macro_f1, champion_f1, incumbent, new_version if promoted else incumbent
    )

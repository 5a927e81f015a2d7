"""The promotion gate: a challenger becomes champion only if it is not worse on today's held-out users.

A new version is registered with alias ``challenger``. The gate scores it and the champion *the same way*
(each with the scoring code packaged with it, ``core.model_runtime``, as the daily Spark job does, on the
same held-out users) and promotes it only if both hold:

- macro-F1 against today's teacher labels is not worse (each model's ids are first matched to today's
  teacher ids by Hungarian matching on the contingency table, so a champion trained on another teacher
  run is not penalised for its numbering);
- day-to-day stability (``ml.evaluation.day_to_day_stability``, the same figure training logs) is not
  worse. With no earlier partition, stability is not compared (the reason says so).

On promotion the challenger gets ``champion`` and the old champion ``previous`` (the rollback target).
The decision, the numbers and every reason go to the active MLflow run (``gate.*`` tags, ``gate_*``
metrics and a ``gate.json`` artifact).

When the champion cannot be scored (the safe policy)
----------------------------------------------------
- Contract change: the champion's signature requires columns that ``features.user_features`` no longer
  has. It could not score today's table in the daily job either, so keeping it would leave the platform
  without a working model: the challenger is promoted and the reason names the missing columns.
- Any other failure (artifacts missing, load or predict error, a transient registry problem): nothing is
  known about the champion, and the same fault may hit the challenger or the daily job. The champion
  stays, the challenger keeps its alias, the decision is logged, and the gate raises
  ``ChampionUnscorable`` so the training run fails loudly. After investigating, an operator can promote
  by hand: ``segments model promote --version N --reason ...``.
- A challenger that cannot be scored is never promoted (its error propagates).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from core.errors import PlatformError
from core.model_registry import CHAMPION, SchemaMismatch, check_model_schema
from core.model_runtime import load_segmenter, local_model_dir
from ml.evaluation import (
    apply_mapping,
    day_to_day_stability,
    holdout_rows,
    hungarian_mapping,
    macro_f1,
    stability_reference,
)
from ml.registry import alias_version, set_champion

GATE_ARTIFACT = "gate.json"


class ChampionUnscorable(PlatformError):
    """The champion failed for a reason other than a contract change: the gate refuses to decide."""


# --- scoring the candidates ------------------------------------------------------------------------
@dataclass
class ModelScore:
    version: str
    macro_f1: float
    stability: float | None  # None: not measurable (no earlier partition / no shared held-out users)
    stability_users: int


def _mapped_f1(predicted: np.ndarray, teacher_labels: np.ndarray, k: int) -> float:
    mapped = apply_mapping(predicted, hungarian_mapping(predicted, teacher_labels))
    return macro_f1(teacher_labels, mapped, k)


def _predict_ids(segmenter: Any, frame: pd.DataFrame) -> np.ndarray:
    if frame.empty:
        return np.zeros(0, dtype=np.int64)
    return segmenter.predict(frame)["segment_id"].to_numpy().astype(np.int64)


def evaluate_version(
    model_name: str,
    version: str,
    holdout_today: pd.DataFrame,
    teacher_labels: np.ndarray,
    k: int,
    holdout_before: pd.DataFrame | None,
) -> ModelScore:
    """Macro-F1 on today's held-out users and day-to-day stability against the earlier partition, scored
    by the version's own packaged code (as the daily Spark job scores it)."""
    model_dir = local_model_dir(f"models:/{model_name}/{version}", f"{model_name}-v{version}")
    segmenter = load_segmenter(model_dir)
    today = _predict_ids(segmenter, holdout_today)
    f1 = _mapped_f1(today, np.asarray(teacher_labels), k)
    stability, users = None, 0
    if holdout_before is not None and not holdout_before.empty:
        before = _predict_ids(segmenter, holdout_before)
        stability, users = day_to_day_stability(holdout_before["user_id"], before, holdout_today["user_id"], today)
    return ModelScore(version, f1, stability, users)


# --- the decision ----------------------------------------------------------------------------------
@dataclass
class GateDecision:
    promoted: bool
    reason: str  # one line: the verdict and its main reasons
    new_macro_f1: float
    champion_macro_f1: float | None  # the incumbent's score on the same held-out users (None: no incumbent)
    previous_champion: str | None  # version that held 'champion' before the decision
    champion: str  # version holding 'champion' after the decision
    status: str = "promoted"  # promoted | rejected | error
    new_stability: float | None = None
    champion_stability: float | None = None
    stability_users: int = 0
    stability_reference_ds: str | None = None
    reasons: list[str] = field(default_factory=list)
    challenger: str = ""
    ds: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _not_worse(new: float, old: float) -> bool:
    return bool(new >= old - 1e-12)  # float noise must not flip a tie


def decide(
    new: ModelScore, champion: ModelScore, reference_ds: str | None
) -> tuple[bool, list[str]]:
    """Pure rule: promote iff macro-F1 and (when measurable for both) stability are not worse."""
    reasons = []
    f1_ok = _not_worse(new.macro_f1, champion.macro_f1)
    reasons.append(
        f"held-out macro-F1 {new.macro_f1:.4f} {'>=' if f1_ok else '<'} champion v{champion.version} "
        f"{champion.macro_f1:.4f}"
    )
    stability_ok = True
    if reference_ds is None:
        reasons.append("stability not compared: no features.user_features partition before ds")
    elif new.stability is None or champion.stability is None:
        reasons.append(f"stability not compared: no held-out user present on both {reference_ds} and ds")
    else:
        stability_ok = _not_worse(new.stability, champion.stability)
        reasons.append(
            f"day-to-day stability vs {reference_ds} {new.stability:.4f} {'>=' if stability_ok else '<'} "
            f"champion {champion.stability:.4f} ({new.stability_users} users)"
        )
    return f1_ok and stability_ok, reasons


def promote_if_better(
    client: Any,
    model_name: str,
    new_version: str | int,
    new_macro_f1: float,
    holdout_features: pd.DataFrame,
    holdout_labels: np.ndarray,
    k: int,
    ds: str | None = None,
) -> GateDecision:
    """Run the gate for ``new_version`` (see the module docstring); moves aliases when it promotes.

    ``holdout_features`` are today's held-out rows (with user_id) and ``holdout_labels`` their teacher
    labels. ``ds`` selects the stability reference (latest partition before it); taken from the model
    version's ``ds`` tag when omitted. Never raises for the champion: an unscorable champion gives
    ``status='error'`` (see ``run_gate``).
    """
    new_version = str(new_version)
    if ds is None:
        ds = client.get_model_version(model_name, new_version).tags.get("ds")
    incumbent = alias_version(client, model_name, CHAMPION)
    base = dict(new_macro_f1=float(new_macro_f1), previous_champion=incumbent, challenger=new_version, ds=ds or "")
    if incumbent is None:
        reason = "no champion yet: first model promoted"
        set_champion(client, model_name, new_version, reason, "gate")
        return GateDecision(True, reason, champion_macro_f1=None, champion=new_version, reasons=[reason], **base)
    if incumbent == new_version:
        reason = "version is already champion"
        return GateDecision(False, reason, champion_macro_f1=None, champion=incumbent, status="rejected",
                            reasons=[reason], **base)

    reference_ds = stability_reference(ds) if ds else None
    before = holdout_rows(reference_ds) if reference_ds else None
    new = evaluate_version(model_name, new_version, holdout_features, holdout_labels, k, before)
    base["new_macro_f1"] = new.macro_f1
    base.update(new_stability=new.stability, stability_users=new.stability_users,
                stability_reference_ds=reference_ds)
    old = _score_champion(client, model_name, incumbent, new_version, ds, base,
                          lambda: evaluate_version(model_name, incumbent, holdout_features, holdout_labels, k,
                                                   before))
    if isinstance(old, GateDecision):
        return old
    promoted, reasons = decide(new, old, reference_ds)
    reason = "; ".join(reasons) + ("; promoted" if promoted else "; kept champion")
    if promoted:
        set_champion(client, model_name, new_version, reason, "gate")
    return GateDecision(
        promoted, reason, champion_macro_f1=old.macro_f1, champion=new_version if promoted else incumbent,
        status="promoted" if promoted else "rejected", champion_stability=old.stability, reasons=reasons,
        **base,
    )


def _score_champion(client: Any, model_name: str, incumbent: str, new_version: str, ds: str | None,
                    base: dict[str, Any], evaluate: Callable[[], ModelScore]) -> ModelScore | GateDecision:
    """The champion's score, or the decision already made when it cannot be scored (module docstring)."""
    try:
        if ds:
            check_model_schema(f"models:/{model_name}/{incumbent}", ds, label=f"champion v{incumbent}")
        return evaluate()
    except SchemaMismatch as exc:
        reason = f"contract change: {exc}; it cannot score today's table, so the challenger is promoted"
        set_champion(client, model_name, new_version, reason, "gate")
        return GateDecision(True, reason, champion_macro_f1=None, champion=new_version, reasons=[reason], **base)
    except Exception as exc:  # noqa: BLE001 - see the policy: unknown champion failure -> keep it, fail loudly
        reason = (f"champion v{incumbent} could not be scored ({type(exc).__name__}: {str(exc)[:300]}); "
                  "kept champion, challenger not promoted")
        return GateDecision(False, reason, champion_macro_f1=float("nan"), champion=incumbent, status="error",
                            reasons=[reason], **base)


def gate_metrics(decision: GateDecision) -> dict[str, float]:
    """The decision's numbers as MLflow metrics (absent ones left out)."""
    metrics = {"gate_promoted": float(decision.promoted), "gate_new_macro_f1": decision.new_macro_f1}
    optional = {
        "gate_champion_macro_f1": decision.champion_macro_f1,
        "gate_new_stability": decision.new_stability,
        "gate_champion_stability": decision.champion_stability,
    }
    metrics.update({k: float(v) for k, v in optional.items() if v is not None and not math.isnan(v)})
    if decision.stability_users:
        metrics["gate_stability_users"] = float(decision.stability_users)
    return metrics


def log_decision(decision: GateDecision) -> None:
    """Write the decision to the active MLflow run: metrics, gate.* tags and the gate.json artifact."""
    import mlflow

    mlflow.log_metrics(gate_metrics(decision))
    mlflow.log_dict(decision.to_json(), GATE_ARTIFACT)
    mlflow.set_tags(
        {
            "gate.decision": decision.status,
            "gate.reason": decision.reason[:5000],
            "gate.previous_champion": decision.previous_champion or "",
            "gate.champion": decision.champion,
            "gate.stability_reference_ds": decision.stability_reference_ds or "",
        }
    )


def run_gate(
    client: Any,
    model_name: str,
    new_version: str | int,
    new_macro_f1: float,
    holdout_features: pd.DataFrame,
    holdout_labels: np.ndarray,
    k: int,
    ds: str,
) -> GateDecision:
    """The train.py hook: gate, log to the active run, and raise ChampionUnscorable on status 'error'."""
    decision = promote_if_better(
        client, model_name, new_version, new_macro_f1, holdout_features, holdout_labels, k, ds
    )
    log_decision(decision)
    if decision.status == "error":
        raise ChampionUnscorable(
            f"promotion gate for {model_name} v{new_version} (ds={ds}): {decision.reason}",
            hint=f"investigate the champion; to promote anyway: segments model promote --version {new_version} "
            "--reason '...'",
        )
    return decision

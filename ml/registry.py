"""Champion/challenger over the MLflow model registry (aliases: champion, challenger, previous).

The promotion gate
------------------
A new version is registered with alias ``challenger``. The gate scores it and the champion *the same way*
(the registered pyfunc, on the same held-out users) and promotes it only if both hold:

- macro-F1 against today's teacher labels is not worse (each model's ids are first matched to today's
  teacher ids by Hungarian matching on the contingency table, so a champion trained on another teacher
  run is not penalised for its numbering);
- day-to-day stability is not worse: the share of held-out users, present in both
  ``features.user_features`` for ds and for the latest earlier partition, that keep their predicted
  segment between the two days. With no earlier partition, stability is not compared (the reason says so).

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

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.evaluation import apply_mapping, hungarian_mapping, is_holdout, macro_f1
from core.errors import PlatformError
from core.model_registry import CHALLENGER, CHAMPION, PREVIOUS, SchemaMismatch, check_model_schema

GATE_ARTIFACT = "gate.json"


class ChampionUnscorable(PlatformError):
    """The champion failed for a reason other than a contract change: the gate refuses to decide."""


class NoSuchVersion(PlatformError):
    """A version or alias the command needs does not exist in the registry."""


# --- scoring the candidates ------------------------------------------------------------------------
@dataclass
class ModelScore:
    version: str
    macro_f1: float
    stability: float | None  # None: not measurable (no earlier partition / no shared held-out users)
    stability_users: int


def _predict_ids(model: Any, frame: pd.DataFrame) -> np.ndarray:
    if frame.empty:
        return np.zeros(0, dtype=np.int64)
    schema = model.metadata.get_input_schema() if model.metadata.signature else None
    columns = [c for c in schema.input_names() if c in frame.columns] if schema is not None else list(frame.columns)
    return model.predict(frame[columns])["segment_id"].to_numpy().astype(np.int64)


def day_to_day_stability(
    users_today: pd.Series, ids_today: np.ndarray, users_before: pd.Series, ids_before: np.ndarray
) -> tuple[float | None, int]:
    """Share of users present on both days whose predicted segment did not change, and their count."""
    today = pd.Series(np.asarray(ids_today), index=users_today.to_numpy())
    before = pd.Series(np.asarray(ids_before), index=users_before.to_numpy())
    today, before = today[~today.index.duplicated()], before[~before.index.duplicated()]
    common = today.index.intersection(before.index)
    if len(common) == 0:
        return None, 0
    return float((today.loc[common].to_numpy() == before.loc[common].to_numpy()).mean()), int(len(common))


def score_model_on(model_uri: str, features: pd.DataFrame, teacher_labels: np.ndarray, k: int) -> float:
    """Macro-F1 of a registered model against today's teacher labels, after Hungarian id matching."""
    import mlflow

    predicted = _predict_ids(mlflow.pyfunc.load_model(model_uri), features)
    return _mapped_f1(predicted, np.asarray(teacher_labels), k)


def _mapped_f1(predicted: np.ndarray, teacher_labels: np.ndarray, k: int) -> float:
    mapped = apply_mapping(predicted, hungarian_mapping(predicted, teacher_labels))
    return macro_f1(teacher_labels, mapped, k)


def evaluate_version(
    model_uri: str,
    version: str,
    holdout_today: pd.DataFrame,
    teacher_labels: np.ndarray,
    k: int,
    holdout_before: pd.DataFrame | None,
) -> ModelScore:
    """Macro-F1 on today's held-out users and day-to-day stability against the earlier partition."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    today = _predict_ids(model, holdout_today)
    f1 = _mapped_f1(today, np.asarray(teacher_labels), k)
    stability, users = None, 0
    if holdout_before is not None and not holdout_before.empty:
        before = _predict_ids(model, holdout_before)
        stability, users = day_to_day_stability(
            holdout_today["user_id"], today, holdout_before["user_id"], before
        )
    return ModelScore(version, f1, stability, users)


def previous_partition(ds: str) -> str | None:
    """The latest features.user_features partition strictly before ds (ds-1 normally)."""
    from core.warehouse import partitions

    earlier = [p for p in partitions("features.user_features") if p < ds]
    return earlier[-1] if earlier else None


def holdout_rows(ds: str) -> pd.DataFrame:
    """Held-out users' rows of features.user_features for ds (the gate's stability reference)."""
    from core.warehouse import read_pandas

    df = read_pandas("features.user_features", ds)
    df = df[df["user_id"].notna()].drop_duplicates("user_id")
    return df[is_holdout(df["user_id"])].reset_index(drop=True)


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


def set_champion(client: Any, model_name: str, version: str, reason: str, kind: str) -> str | None:
    """champion := version, previous := the old champion (if any and different). Returns the old one."""
    version = str(version)
    incumbent = _alias_version(client, model_name, CHAMPION)
    if incumbent is not None and incumbent != version:
        client.set_registered_model_alias(model_name, PREVIOUS, incumbent)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, "promotion.kind", kind)
    client.set_model_version_tag(model_name, version, "promotion.reason", reason[:5000])
    if incumbent is not None and incumbent != version:
        client.set_model_version_tag(model_name, version, "promotion.replaced", incumbent)
    return incumbent


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
    name_uri = f"models:/{model_name}"
    if ds is None:
        ds = client.get_model_version(model_name, new_version).tags.get("ds")
    incumbent = _alias_version(client, model_name, CHAMPION)
    base = dict(new_macro_f1=float(new_macro_f1), previous_champion=incumbent, challenger=new_version, ds=ds or "")
    if incumbent is None:
        reason = "no champion yet: first model promoted"
        set_champion(client, model_name, new_version, reason, "gate")
        return GateDecision(True, reason, champion_macro_f1=None, champion=new_version, reasons=[reason], **base)
    if incumbent == new_version:
        reason = "version is already champion"
        return GateDecision(False, reason, champion_macro_f1=None, champion=incumbent, status="rejected",
                            reasons=[reason], **base)

    reference_ds = previous_partition(ds) if ds else None
    before = holdout_rows(reference_ds) if reference_ds else None
    new = evaluate_version(f"{name_uri}/{new_version}", new_version, holdout_features, holdout_labels, k, before)
    base["new_macro_f1"] = new.macro_f1
    scores = dict(new_stability=new.stability, stability_users=new.stability_users,
                  stability_reference_ds=reference_ds)
    try:
        if ds:
            check_model_schema(f"{name_uri}/{incumbent}", ds, label=f"champion v{incumbent}")
        old = evaluate_version(f"{name_uri}/{incumbent}", incumbent, holdout_features, holdout_labels, k, before)
    except SchemaMismatch as exc:
        reason = f"contract change: {exc}; it cannot score today's table, so the challenger is promoted"
        set_champion(client, model_name, new_version, reason, "gate")
        return GateDecision(True, reason, champion_macro_f1=None, champion=new_version, reasons=[reason],
                            **base, **scores)
    except Exception as exc:  # noqa: BLE001 - see the policy: unknown champion failure -> keep it, fail loudly
        reason = (f"champion v{incumbent} could not be scored ({type(exc).__name__}: {str(exc)[:300]}); "
                  "kept champion, challenger not promoted")
        return GateDecision(False, reason, champion_macro_f1=float("nan"), champion=incumbent, status="error",
                            reasons=[reason], **base, **scores)

    promoted, reasons = decide(new, old, reference_ds)
    reason = "; ".join(reasons) + ("; promoted" if promoted else "; kept champion")
    if promoted:
        set_champion(client, model_name, new_version, reason, "gate")
    return GateDecision(
        promoted, reason, champion_macro_f1=old.macro_f1, champion=new_version if promoted else incumbent,
        status="promoted" if promoted else "rejected", champion_stability=old.stability, reasons=reasons,
        **base, **scores,
    )


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


# --- registry commands (segments model list|promote|rollback) -------------------------------------
def _alias_version(client: Any, model_name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: tuple[str, ...]
    ds: str
    holdout_macro_f1: str
    created: str  # UTC, from the registry's creation timestamp
    run_id: str


def list_versions(client: Any, model_name: str) -> list[VersionRow]:
    """Every registered version, newest first."""
    versions = client.search_model_versions(f"name='{model_name}'")
    # search results do not carry aliases (SQLite store); the registered model has alias -> version.
    by_version: dict[str, list[str]] = {}
    if versions:
        for alias, version in (client.get_registered_model(model_name).aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
    rows = []
    for v in versions:
        created = dt.datetime.fromtimestamp(v.creation_timestamp / 1000, tz=dt.timezone.utc)
        rows.append(VersionRow(
            version=str(v.version),
            aliases=tuple(sorted(by_version.get(str(v.version), []))),
            ds=v.tags.get("ds", ""),
            holdout_macro_f1=v.tags.get("holdout_macro_f1", ""),
            created=created.strftime("%Y-%m-%d %H:%M:%S"),
            run_id=v.run_id or "",
        ))
    return sorted(rows, key=lambda r: int(r.version), reverse=True)


def promote(client: Any, model_name: str, version: str | None, reason: str) -> tuple[str, str | None]:
    """Manual promotion of ``version`` (default: the challenger). Returns (new champion, old champion)."""
    if version is None:
        version = _alias_version(client, model_name, CHALLENGER)
        if version is None:
            raise NoSuchVersion(f"model {model_name} has no 'challenger' version",
                                hint="train one (segments train --ds <ds>) or pass --version")
    version = str(version)
    if not _version_exists(client, model_name, version):
        raise NoSuchVersion(f"model {model_name} has no version {version}", hint="see: segments model list")
    incumbent = _alias_version(client, model_name, CHAMPION)
    if incumbent == version:
        raise NoSuchVersion(f"{model_name} v{version} is already champion", hint="see: segments model list")
    set_champion(client, model_name, version, f"manual: {reason}", "manual")
    return version, incumbent


def rollback(client: Any, model_name: str, reason: str) -> tuple[str, str]:
    """champion := previous in one step. Returns (restored champion, demoted version).

    The alias 'previous' is removed (a second rollback fails instead of flip-flopping); the demoted
    version is tagged so the listing shows why it lost the alias. Undo with ``promote --version``.
    """
    previous = _alias_version(client, model_name, PREVIOUS)
    if previous is None:
        raise NoSuchVersion(
            f"model {model_name} has no 'previous' version to roll back to",
            hint="only a promotion sets 'previous'; pick a version with: segments model list, then "
            "segments model promote --version N",
        )
    demoted = _alias_version(client, model_name, CHAMPION) or ""
    client.set_registered_model_alias(model_name, CHAMPION, previous)
    client.delete_registered_model_alias(model_name, PREVIOUS)
    client.set_model_version_tag(model_name, previous, "promotion.kind", "rollback")
    client.set_model_version_tag(model_name, previous, "promotion.reason", f"rollback: {reason}"[:5000])
    if demoted:
        client.set_model_version_tag(model_name, demoted, "rolled_back", f"replaced by v{previous}: {reason}"[:5000])
    return previous, demoted


def _version_exists(client: Any, model_name: str, version: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model_name, version)
    except MlflowException:
        return False
    return True

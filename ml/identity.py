"""Segment identity across retrains: new teacher clusters take the champion's ids (and names) by profile.

K-means numbers its clusters arbitrarily, so without this step a retrain could call yesterday's segment 2
"segment 4" and every BI chart of segment sizes over time would jump. Each model stores its segment
profiles (``ml.profiles.segment_profiles`` of the numeric contract features) in the run artifact
``segment_identity.json``. At training time the champion's profiles and the new ones are standardised with
the *new training data's* per-user mean/std (so every feature weighs the same and units cancel), matched
one-to-one by Hungarian assignment on centroid distance, and the new teacher labels are relabelled before
names are derived and the student is trained.

Rules (pure functions below, unit-tested on tiny arrays):
- ids: matched new segments take their champion id; unmatched new segments (k_new > k_old) take the
  smallest free ids. The student's softmax index *is* the segment id, so ids must be 0..k_new-1: when
  k_new < k_old a matched segment whose champion id is >= k_new moves to the smallest free id below
  k_new (the id of a champion segment that disappeared). That one relabel is unavoidable without gaps.
- names: a matched segment keeps the champion's name and action only if its profile is close
  (RMS z-distance <= ``MAX_NAME_DISTANCE``); otherwise, and for unmatched segments, the rule-based name is
  used, never one already carried over (the next best free rule name, else ``<name>_<id>``).

Pure numpy/pandas/scipy; MLflow only in ``champion_identity`` / ``Alignment.log``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ml.profiles import numeric_frame, segment_profiles

ARTIFACT = "segment_identity.json"
FORMAT_VERSION = 1
# One standard deviation per feature on average: closer than that, a segment is "the same group".
MAX_NAME_DISTANCE = 1.0


# --- profiles --------------------------------------------------------------------------------------
def identity_features(columns: Sequence[str]) -> list[str]:
    """The fixed profile features: the contract's numeric features present in ``columns``, contract order."""
    from core.feature_catalog import NUMERIC_FEATURES

    present = set(columns)
    return [c for c in NUMERIC_FEATURES if c in present]


def profiles_to_json(
    profiles: pd.DataFrame, sizes: Mapping[int, int], segments: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """The ``segment_identity.json`` payload (NaN means -> null)."""
    return {
        "version": FORMAT_VERSION,
        "features": list(profiles.columns),
        "profiles": {
            str(int(seg)): {c: (None if pd.isna(v) else float(v)) for c, v in row.items()}
            for seg, row in profiles.iterrows()
        },
        "users": {str(int(k)): int(v) for k, v in sizes.items()},
        "segments": {str(k): dict(v) for k, v in segments.items()},
    }


def profiles_from_json(payload: Mapping[str, Any]) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    """(profiles indexed by segment id, {id: {name, action}}) from a ``segment_identity.json`` payload."""
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported {ARTIFACT} version {payload.get('version')!r}")
    profiles = pd.DataFrame.from_dict(
        {int(k): v for k, v in payload["profiles"].items()}, orient="index", columns=payload["features"]
    ).astype(float).sort_index()
    return profiles, {str(k): dict(v) for k, v in payload.get("segments", {}).items()}


# --- matching (pure) -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    """new cluster index -> segment id, and the champion segment each new cluster was matched to."""

    ids: dict[int, int]  # new cluster -> assigned segment id (0..k_new-1)
    matched: dict[int, int]  # new cluster -> champion segment id (only matched clusters)
    distances: dict[int, float]  # new cluster -> RMS z-distance to its champion segment (matched only)


def standardise(centroids: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """z-scores with the given per-feature stats; a constant feature (std 0) contributes 0."""
    safe = np.where(std > 1e-12, std, 1.0)
    z = (centroids - mean) / safe
    return np.where(std > 1e-12, z, 0.0)


def distance_matrix(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """RMS distance [k_new, k_old] over the features both centroids define (NaN features skipped)."""
    diff = new[:, None, :] - old[None, :, :]
    sq = np.where(np.isnan(diff), np.nan, diff**2)
    with np.errstate(invalid="ignore"):
        rms = np.sqrt(np.nanmean(sq, axis=2))
    # A pair with no comparable feature must still be assignable, just never preferred.
    return np.where(np.isnan(rms), 1e6, rms)


def match_centroids(new: np.ndarray, old: np.ndarray, old_ids: Sequence[int]) -> Match:
    """Hungarian matching of standardised centroids ``new`` [k_new, d] onto ``old`` [k_old, d].

    New cluster i is row i. Returns the id assignment described in the module docstring.
    """
    from scipy.optimize import linear_sum_assignment

    k_new = len(new)
    old_ids = [int(i) for i in old_ids]
    if len(old_ids) != len(old):
        raise ValueError(f"{len(old)} champion centroids but {len(old_ids)} ids")
    if k_new == 0:
        return Match({}, {}, {})
    if len(old) == 0:
        return Match({i: i for i in range(k_new)}, {}, {})
    cost = distance_matrix(new, old)
    rows, cols = linear_sum_assignment(cost)
    matched = {int(r): old_ids[c] for r, c in zip(rows, cols)}
    distances = {int(r): float(cost[r, c]) for r, c in zip(rows, cols)}
    ids: dict[int, int] = {r: oid for r, oid in matched.items() if oid < k_new}
    # Smallest free ids first, for unmatched clusters and for matched ones whose id is out of range;
    # the latter go in order of their champion id so the result does not depend on cluster numbering.
    free = iter(sorted(set(range(k_new)) - set(ids.values())))
    displaced = sorted((r for r, oid in matched.items() if oid >= k_new), key=lambda r: matched[r])
    unmatched = [r for r in range(k_new) if r not in matched]
    for r in displaced + unmatched:
        ids[r] = next(free)
    return Match(dict(sorted(ids.items())), matched, distances)


def relabel(labels: np.ndarray, ids: Mapping[int, int]) -> np.ndarray:
    """Apply a cluster -> id mapping (every label must be mapped)."""
    lookup = np.full(int(max(ids)) + 1, -1, dtype=np.int64)
    for cluster, new_id in ids.items():
        lookup[cluster] = new_id
    out = lookup[np.asarray(labels, dtype=np.int64)]
    if (out < 0).any():
        raise ValueError("labels contain a cluster that has no id")
    return out


def carry_names(
    rule_names: Mapping[str, Mapping[str, str]],
    rule_scores: pd.DataFrame | None,
    champion_names: Mapping[str, Mapping[str, str]],
    kept: Mapping[int, int],
) -> dict[str, dict[str, str]]:
    """Segment names after identity matching.

    ``rule_names``: {id: {name, action}} from the naming rules for the relabelled segments;
    ``rule_scores``: the segments x names score table behind them (``ml.naming.score_table``), used to find
    the next best free name; ``kept``: new id -> champion id for segments close enough to keep the name.
    """
    from ml.naming import ACTIONS

    out: dict[str, dict[str, str]] = {}
    for new_id, old_id in kept.items():
        if str(old_id) in champion_names:
            out[str(new_id)] = dict(champion_names[str(old_id)])
    taken = {v["name"] for v in out.values()}
    for seg in sorted(rule_names, key=int):
        if seg in out:
            continue
        label = dict(rule_names[seg])
        if label["name"] in taken:
            candidates: list[str] = []
            if rule_scores is not None and int(seg) in rule_scores.index:
                row = rule_scores.loc[int(seg)]
                candidates = [n for n in row.sort_values(ascending=False, kind="stable").index if n not in taken]
            if candidates:
                label = {"name": candidates[0], "action": ACTIONS.get(candidates[0], label["action"])}
            else:
                label = {"name": f"{label['name']}_{seg}", "action": label["action"]}
        out[seg] = label
        taken.add(label["name"])
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


# --- the training hook -----------------------------------------------------------------------------
@dataclass
class Alignment:
    """Result of aligning today's teacher labels with the champion (what train.py uses and logs)."""

    labels: np.ndarray
    features: list[str]
    champion_version: str | None = None
    champion_names: dict[str, dict[str, str]] = field(default_factory=dict)
    match: Match | None = None
    note: str = ""

    @property
    def kept_names(self) -> dict[int, int]:
        """new id -> champion id, for segments close enough to inherit the champion's name."""
        if self.match is None:
            return {}
        return {
            self.match.ids[c]: old
            for c, old in self.match.matched.items()
            if self.match.distances[c] <= MAX_NAME_DISTANCE
        }

    def names(
        self, rule_names: Mapping[str, Mapping[str, str]], rule_scores: pd.DataFrame | None = None
    ) -> dict[str, dict[str, str]]:
        return carry_names(rule_names, rule_scores, self.champion_names, self.kept_names)

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = {"champion_version": self.champion_version, "note": self.note}
        if self.match is not None:
            report["pairs"] = [
                {
                    "cluster": c,
                    "segment_id": self.match.ids[c],
                    "champion_segment_id": self.match.matched.get(c),
                    "distance": self.match.distances.get(c),
                    "name_kept": self.match.ids[c] in self.kept_names,
                }
                for c in sorted(self.match.ids)
            ]
        return report

    def log(self, features: pd.DataFrame, segments: Mapping[str, Mapping[str, str]]) -> None:
        """Log this model's identity artifact (profiles of the relabelled segments) to the active run."""
        import mlflow

        profiles = segment_profiles(features, self.labels, self.features)
        sizes = pd.Series(self.labels).value_counts().to_dict()
        payload = profiles_to_json(profiles, sizes, segments)
        payload["matching"] = self.report()
        mlflow.log_dict(payload, ARTIFACT)
        mlflow.set_tag("identity.champion_version", self.champion_version or "")
        mlflow.set_tag("identity.note", self.note[:5000])


def align(
    features: pd.DataFrame,
    labels: np.ndarray,
    train_mask: np.ndarray,
    champion: tuple[str, pd.DataFrame, dict[str, dict[str, str]]] | None,
) -> Alignment:
    """Relabel ``labels`` (teacher clusters of ``features`` rows) onto the champion's segment ids.

    ``champion`` is (version, profiles, names) or None (first model: labels unchanged). Standardisation
    uses the training users' per-user mean/std of each shared feature.
    """
    labels = np.asarray(labels, dtype=np.int64)
    columns = identity_features(features.columns)
    if champion is None:
        return Alignment(labels, columns, note="no champion with segment profiles: ids as clustered")
    version, old_profiles, old_names = champion
    shared = [c for c in columns if c in old_profiles.columns]
    if not shared:
        return Alignment(labels, columns, version, old_names, note=f"champion v{version} shares no profile feature")
    k_new = int(labels.max()) + 1 if len(labels) else 0
    new_profiles = segment_profiles(features, labels, shared).reindex(range(k_new))
    train = numeric_frame(features[np.asarray(train_mask, dtype=bool)], shared)
    mean, std = train.mean().to_numpy(), train.std(ddof=0).to_numpy()
    match = match_centroids(
        standardise(new_profiles.to_numpy(), mean, std),
        standardise(old_profiles[shared].to_numpy(), mean, std),
        list(old_profiles.index),
    )
    kept = sum(d <= MAX_NAME_DISTANCE for d in match.distances.values())
    note = (
        f"matched {len(match.matched)} of {k_new} segments to champion v{version}'s {len(old_profiles)} "
        f"on {len(shared)} features; {kept} close enough to keep their names"
    )
    return Alignment(relabel(labels, match.ids), columns, version, old_names, match, note)


def champion_identity(client: Any, model_name: str) -> tuple[str, pd.DataFrame, dict[str, dict[str, str]]] | None:
    """(version, profiles, names) of the current champion, or None (no champion, or one from before
    identity artifacts existed: then the new model's ids stay as clustered)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(model_name, "champion")
    except MlflowException:
        return None
    try:
        payload = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{ARTIFACT}")
    except (MlflowException, OSError, json.JSONDecodeError):
        return None
    profiles, names = profiles_from_json(payload)
    return str(version.version), profiles, names


def align_with_champion(features: pd.DataFrame, labels: np.ndarray, train_mask: np.ndarray) -> Alignment:
    """The train.py hook: look up the champion's identity in the registry and align ``labels`` to it."""
    from core import settings as settings_mod
    from core.model_registry import mlflow_client

    champion = champion_identity(mlflow_client(), settings_mod.load().model_name)
    return align(features, labels, train_mask, champion)

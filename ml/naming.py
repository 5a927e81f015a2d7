"""Human names and marketing actions for teacher segments, from rules over each segment's profile.

A profile is the per-segment mean of a few raw features (``ml.profiles.segment_profiles``). Each feature
is compared across segments (z-score over the segment means), each candidate name scores a weighted sum
of those z-scores, and names are handed out greedily by score so every segment gets a distinct name.
Nothing here looks at planted personas: the names must be earnable on real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ml.profiles import segment_profiles

ACTIONS: dict[str, str] = {
    "high_value_loyal": "loyalty perks",
    "bargain_hunter": "targeted coupons",
    "window_shopper": "conversion nudges",
    "at_risk": "win-back campaign",
    "new_and_growing": "onboarding journey",
    "occasional": "low-cost reminders",
}
FALLBACK_ACTION = "review segment"

# name -> {term: weight}; score = sum(weight * z[term]) / sum(|weight|). A term is a feature or a tuple of
# alternatives, the first one the shop has wins (a purchase log has orders, not purchase events). A rule
# with a term the shop has none of is not used: no "window_shopper" without views.
# Read each rule as "what makes a segment this".
Term = str | tuple[str, ...]
_SPEND = ("revenue_90d", "purchases_90d")  # money spent, else items bought (a clickstream without orders)
RULES: dict[str, dict[Term, float]] = {
    # Spends and buys a lot, has been around, was seen recently.
    "high_value_loyal": {_SPEND: 1.0, ("purchases_30d", "orders_30d"): 1.0,
                         ("tenure_days", "days_since_first_seen"): 0.5, "recency_days": -0.5},
    # Buys mostly on discount.
    "bargain_hunter": {"discount_share_90d": 2.0, ("purchases_30d", "orders_30d"): 0.25},
    # Browses a lot, rarely buys.
    "window_shopper": {"views_30d": 1.0, "purchases_30d": -1.0, _SPEND: -0.5},
    # Activity falling and not seen lately.
    "at_risk": {("activity_trend", "spend_trend"): -1.5, "recency_days": 1.0},
    # Young accounts with rising activity.
    "new_and_growing": {("tenure_days", "days_since_first_seen"): -1.5, ("activity_trend", "spend_trend"): 1.0},
    # Low everything.
    "occasional": {("views_30d", "active_days_30d"): -1.0, ("purchases_30d", "orders_30d"): -1.0,
                   _SPEND: -0.5, "recency_days": 0.5},
}


def _alternatives(term: Term) -> tuple[str, ...]:
    return (term,) if isinstance(term, str) else term


PROFILE_FEATURES: tuple[str, ...] = tuple(dict.fromkeys(
    f for rule in RULES.values() for term in rule for f in _alternatives(term)))


def _resolve(rule: dict[Term, float], present: set[str]) -> dict[str, float] | None:
    """The rule on the features the shop has (each term's first present alternative); None if a term has
    none."""
    resolved: dict[str, float] = {}
    for term, weight in rule.items():
        feature = next((f for f in _alternatives(term) if f in present), None)
        if feature is None:
            return None
        resolved[feature] = resolved.get(feature, 0.0) + weight
    return resolved


@dataclass(frozen=True)
class SegmentLabel:
    segment_id: int
    name: str
    action: str
    score: float


def _zscores(profiles: pd.DataFrame) -> pd.DataFrame:
    """z-score of every profile feature across segments; missing features / NaNs / constants -> 0."""
    z = pd.DataFrame(0.0, index=profiles.index, columns=list(PROFILE_FEATURES))
    for col in PROFILE_FEATURES:
        if col not in profiles.columns:
            continue
        values = pd.to_numeric(profiles[col], errors="coerce").astype(float)
        mu, sd = values.mean(), values.std(ddof=0)
        if np.isfinite(sd) and sd > 1e-12:
            z[col] = ((values - mu) / sd).fillna(0.0)
    return z


def score_table(profiles: pd.DataFrame) -> pd.DataFrame:
    """segments x names matrix of rule scores, for the rules the profiles' features allow.

    A feature is present when some segment has a value for it (an absent family is null everywhere).
    """
    z = _zscores(profiles)
    present = {c for c in PROFILE_FEATURES if c in profiles.columns and profiles[c].notna().any()}
    rules = {name: r for name, rule in RULES.items() if (r := _resolve(rule, present)) is not None}
    # Divided by the rule's total |weight|: a score is a weighted *average* z-score, so rules with more
    # terms (occasional) do not outbid single-signal rules (bargain_hunter) just by summing more.
    return pd.DataFrame(
        {name: sum(w * z[f] for f, w in rule.items()) / sum(abs(w) for w in rule.values())
         for name, rule in rules.items()},
        index=profiles.index, columns=list(rules), dtype=float,
    )


def name_segments(profiles: pd.DataFrame) -> dict[int, SegmentLabel]:
    """Assign each segment (row of ``profiles``) a unique name and its action.

    Greedy: repeatedly take the highest-scoring (segment, name) pair among unnamed segments and unused
    names (ties broken by segment id, then rule order). With more segments than names, the rest get their
    best name suffixed ('at_risk_2'). A segment whose profile does not stand out on any feature (all
    z-scores 0: a single segment, or no profile features) has nothing to be named after and falls back to
    'segment_<id>'.
    """
    scores = score_table(profiles)
    name_order = list(scores.columns)
    result: dict[int, SegmentLabel] = {}
    uninformative = [int(s) for s in scores.index if np.allclose(scores.loc[s].to_numpy(), 0.0)]
    for seg in uninformative:
        result[seg] = SegmentLabel(seg, f"segment_{seg}", FALLBACK_ACTION, 0.0)
    free_names = list(name_order)
    free_segments = [int(s) for s in scores.index if int(s) not in uninformative]
    while free_segments and free_names:
        best = max(
            (float(scores.at[s, n]), -s, -name_order.index(n), s, n)
            for s in free_segments
            for n in free_names
        )
        score, _, _, seg, name = best
        result[seg] = SegmentLabel(seg, name, ACTIONS[name], score)
        free_segments.remove(seg)
        free_names.remove(name)
    # More segments than names: reuse each segment's best name with a numeric suffix.
    used: dict[str, int] = {}
    for seg in free_segments:
        if not name_order:  # the shop's features allow no rule at all
            result[seg] = SegmentLabel(seg, f"segment_{seg}", FALLBACK_ACTION, 0.0)
            continue
        row = scores.loc[seg]
        name = max(name_order, key=lambda n: (row[n], -name_order.index(n)))
        used[name] = used.get(name, 1) + 1
        result[seg] = SegmentLabel(seg, f"{name}_{used[name]}", ACTIONS[name], float(row[name]))
    return dict(sorted(result.items()))


def names_from_features(
    features: pd.DataFrame, labels: Sequence[int] | np.ndarray, k: int
) -> tuple[dict[int, SegmentLabel], pd.DataFrame]:
    """Names for segments 0..k-1, and their profiles: means of ``PROFILE_FEATURES`` plus 'users'.

    A segment with no users still gets a row (NaN means, 0 users) and a name.
    """
    profiles = segment_profiles(features, labels, PROFILE_FEATURES).reindex(range(k))
    profiles["users"] = pd.Series(np.asarray(labels, dtype=np.int64)).value_counts().reindex(
        profiles.index, fill_value=0
    )
    return name_segments(profiles), profiles


def as_mapping(labels: Mapping[int, SegmentLabel]) -> dict[str, dict[str, str]]:
    """JSON-friendly {segment_id: {name, action}} (JSON object keys are strings)."""
    return {str(k): {"name": v.name, "action": v.action} for k, v in sorted(labels.items())}

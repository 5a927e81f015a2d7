"""The six planted personas: names, shares, per-persona behaviour parameters and activity trajectories.

Every parameter array is indexed by persona code (``HV, BH, WS, AR, NG, OC``, the position in
``PERSONAS``), so one column of numbers compares the personas at a glance. What each persona means is
described in the docstring of ``synthetic/generator.py``.
"""

from __future__ import annotations

import functools

import numpy as np

from core.settings import SEQUENCE_DAYS

PERSONAS: tuple[str, ...] = (
    "high_value_loyal",
    "bargain_hunter",
    "window_shopper",
    "at_risk",
    "new_and_growing",
    "occasional",
)
PERSONA_SHARES = np.array([0.12, 0.18, 0.20, 0.15, 0.15, 0.20])
HV, BH, WS, AR, NG, OC = range(len(PERSONAS))

# Per-persona parameters, indexed by persona code (HV, BH, WS, AR, NG, OC).
# AR and NG share everything except base activity and trajectory (see the generator docstring).
P_ACTIVE = np.array([0.80, 0.42, 0.45, 0.60, 0.60, 0.09])  # NG is rescaled by ng_activity_scale()
WEEKEND_BOOST = np.array([1.05, 1.25, 1.35, 1.15, 1.15, 1.45])  # weekend / weekday activity ratio
DAYTIME_SHARE = np.array([0.25, 0.40, 0.35, 0.30, 0.30, 0.45])  # users shopping mostly in daytime
EXTRA_SESSIONS = np.array([0.80, 0.45, 0.60, 0.55, 0.55, 0.15])  # Poisson mean of sessions beyond 1
SEARCHES = np.array([0.8, 2.0, 2.4, 1.1, 1.1, 0.6])  # per session
EXTRA_VIEWS = np.array([3.5, 3.5, 5.5, 3.5, 3.5, 2.0])  # Poisson mean of views beyond 1, per session
P_CART = np.array([0.22, 0.16, 0.09, 0.16, 0.16, 0.16])  # per view
P_BUY_SESSION = np.array([0.75, 0.55, 0.05, 0.55, 0.55, 0.50])  # given at least one cart
P_BUY_MORE = np.array([0.65, 0.55, 0.30, 0.55, 0.55, 0.30])  # each further cart item bought
P_REMOVE = np.array([0.30, 0.35, 0.50, 0.30, 0.30, 0.30])  # each unbought cart item removed
EXTRA_QTY = np.array([0.15, 0.45, 0.10, 0.15, 0.15, 0.05])  # Poisson mean of quantity beyond 1
PRICE_BETA = np.array([[5.0, 1.8], [1.3, 5.0], [3.0, 3.0], [3.0, 2.5], [3.0, 2.5], [1.8, 4.0]])
VIEW_DWELL_MEDIAN = np.array([25.0, 30.0, 75.0, 30.0, 30.0, 25.0])  # seconds
P_DISCOUNT = np.array([0.08, 0.85, 0.20, 0.22, 0.22, 0.20])  # share of orders with a discount
DISCOUNT_RANGE = np.array(
    [[0.03, 0.10], [0.25, 0.50], [0.05, 0.20], [0.05, 0.20], [0.05, 0.20], [0.05, 0.20]]
)  # share of gross
BIRTH_MEAN = np.array([1978.0, 1988.0, 1994.0, 1985.0, 1992.0, 1983.0])

# Trajectories, in days before end_date (b = 0 is end_date).
AR_DECAY_DAYS = (28, 42)  # at_risk decay starts this many days before end (inclusive range)
_AR_FLOOR = 0.02
NG_SIGNUP_DAYS = (30, 45)  # new_and_growing signs up this many days before end (inclusive range)
_NG_FLOOR = 0.15


def allocate_personas(n: int, rng: np.random.Generator) -> np.ndarray:
    """Exact persona counts (largest remainder), shuffled: shares hold even for tiny populations."""
    raw = PERSONA_SHARES * n
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return rng.permutation(np.repeat(np.arange(len(PERSONAS)), counts))


def weekday_factor(persona: np.ndarray, weekday: int) -> np.ndarray:
    """Activity factor for a weekday (0=Mon): weekend/weekday ratio = boost, weekly mean = 1."""
    boost = WEEKEND_BOOST[persona]
    norm = (5.0 + 2.0 * boost) / 7.0
    return (boost if weekday >= 5 else 1.0) / norm


def trajectory_level(
    persona: np.ndarray, b: float, ar_decay_days: np.ndarray, ng_signup_days: np.ndarray
) -> np.ndarray:
    """Per-user activity multiplier ``b`` days before end_date: fading AR, ramping NG, 1 otherwise."""
    level = np.ones(len(persona))
    level = np.where(persona == AR, _ar_level(b, ar_decay_days), level)
    return np.where(persona == NG, ng_activity_scale() * _ng_level(b, ng_signup_days), level)


@functools.cache
def ng_activity_scale() -> float:
    """Factor on NG's trajectory that gives NG and AR equal expected 28-day totals from P_ACTIVE."""
    return _ng_base_scale() * P_ACTIVE[AR] / P_ACTIVE[NG]


def _ar_level(b: float | np.ndarray, decay_days: np.ndarray) -> np.ndarray:
    """at_risk activity multiplier: 1 until the decay starts, then linear down to the floor at b=0."""
    frac = np.clip(b / decay_days, 0.0, 1.0)
    return np.where(b >= decay_days, 1.0, _AR_FLOOR + (1.0 - _AR_FLOOR) * frac)


def _ng_level(b: float | np.ndarray, signup_days: np.ndarray) -> np.ndarray:
    """new_and_growing multiplier: 0 up to the signup day, then a linear ramp reaching 1 at b=0."""
    k = signup_days - b  # days since signup
    return np.where(k <= 0, 0.0, _NG_FLOOR + (1.0 - _NG_FLOOR) * k / signup_days)


def _ng_base_scale() -> float:
    """NG/AR base-activity ratio that equalises their expected 28-day totals (exact over the grids)."""
    b = np.arange(SEQUENCE_DAYS, dtype=float)[None, :]
    d = np.arange(AR_DECAY_DAYS[0], AR_DECAY_DAYS[1] + 1, dtype=float)[:, None]
    s = np.arange(NG_SIGNUP_DAYS[0], NG_SIGNUP_DAYS[1] + 1, dtype=float)[:, None]
    return float(_ar_level(b, d).sum(axis=1).mean() / _ng_level(b, s).sum(axis=1).mean())

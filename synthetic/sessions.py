"""Who is active on a day, and each of their sessions: device and how many views, searches, carts,
purchases and removals it holds (the events themselves are drawn in ``synthetic/events.py``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from synthetic.personas import (
    EXTRA_SESSIONS,
    EXTRA_VIEWS,
    P_ACTIVE,
    P_BUY_MORE,
    P_BUY_SESSION,
    P_CART,
    P_REMOVE,
    SEARCHES,
    trajectory_level,
    weekday_factor,
)
from synthetic.population import DEVICES, Population

_PREFERRED_DEVICE_SHARE = 0.85  # sessions on the user's preferred device, the rest on a random one


@dataclass
class Sessions:
    """A day's sessions, grouped by user; element i is session i of the day (its session_id number)."""

    user: np.ndarray  # user index
    persona: np.ndarray  # persona code of the user
    device: np.ndarray  # device code
    n_search: np.ndarray
    n_view: np.ndarray  # at least 1
    n_cart: np.ndarray  # each refers to a viewed product
    n_purchase: np.ndarray  # the first n_purchase carts are bought
    n_remove: np.ndarray  # the next n_remove carts are removed

    def __len__(self) -> int:
        return len(self.user)


def active_users(d: int, days: int, date: dt.date, pop: Population, rng: np.random.Generator) -> np.ndarray:
    """Indices of the users active on day ``d`` (of ``days``, falling on ``date``)."""
    persona = pop.persona
    b = float(days - 1 - d)  # days before end_date
    level = trajectory_level(persona, b, pop.ar_decay_days, pop.ng_signup_days)
    shock = np.exp(rng.normal(0.0, 0.05))  # shared day-level noise (weather, campaigns)
    p_active = P_ACTIVE[persona] * level * weekday_factor(persona, date.weekday())
    p_active = np.clip(p_active * np.sqrt(pop.intensity) * shock, 0.0, 0.95)
    p_active[d < pop.first_active_day] = 0.0
    return np.flatnonzero(rng.random(len(persona)) < p_active)


def draw_sessions(active: np.ndarray, pop: Population, rng: np.random.Generator) -> Sessions:
    """The sessions of the ``active`` users and what each holds, by persona, intensity and propensity."""
    n_sess = 1 + rng.poisson(EXTRA_SESSIONS[pop.persona[active]] * pop.intensity[active])
    s_user = np.repeat(active, n_sess)
    sp = pop.persona[s_user]
    n_s = len(s_user)
    preferred = rng.random(n_s) < _PREFERRED_DEVICE_SHARE
    device = np.where(preferred, pop.device[s_user], rng.integers(0, len(DEVICES), n_s))

    n_search = rng.poisson(SEARCHES[sp])
    n_view = 1 + rng.poisson(EXTRA_VIEWS[sp] * np.sqrt(pop.intensity[s_user]))
    n_cart = rng.binomial(n_view, P_CART[sp])
    p_buy = np.clip(P_BUY_SESSION[sp] * pop.propensity[s_user], 0.0, 0.97)
    buys = (n_cart > 0) & (rng.random(n_s) < p_buy)
    n_purch = np.where(buys, 1 + rng.binomial(np.maximum(n_cart - 1, 0), P_BUY_MORE[sp]), 0)
    n_remove = rng.binomial(n_cart - n_purch, P_REMOVE[sp])
    return Sessions(
        user=s_user, persona=sp, device=device, n_search=n_search, n_view=n_view, n_cart=n_cart,
        n_purchase=n_purch, n_remove=n_remove,
    )

"""The simulated users (persona, habits, signup, raw.users attributes) and the product catalogue.

Both are drawn once per seed from the static rng stream, users first, then products.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core import tables
from synthetic.columns import US_PER_DAY, day_start_us, padded_ids
from synthetic.personas import (
    AR_DECAY_DAYS,
    BIRTH_MEAN,
    DAYTIME_SHARE,
    NG,
    NG_SIGNUP_DAYS,
    OC,
    WS,
    allocate_personas,
)

DEVICES = ("mobile", "desktop", "tablet")
GENDERS = ("female", "male", "other")
OCCUPATIONS = ("student", "professional", "manager", "service", "self_employed", "retired", "unemployed")
CITY_TIERS = ("1", "2", "3")
CATEGORIES = (
    "electronics", "fashion", "home", "beauty", "sports", "books", "toys", "grocery", "garden", "automotive",
)
N_CATEGORIES = len(CATEGORIES)
PRODUCTS_PER_CATEGORY = 250

_INTENSITY_SIGMA = 0.35
_PROPENSITY_SIGMA = 0.25
_MISSING_ATTR = {"birth_year": 0.04, "gender": 0.03, "occupation": 0.06, "city_tier": 0.03}
_LATE_SIGNUP_SHARE = 0.10  # window shoppers / occasional users who sign up inside the window


@dataclass
class Population:
    """Every user, one array element per user (index = number in the user_id)."""

    persona: np.ndarray  # int8 code per user
    user_ids: pa.Array
    intensity: np.ndarray
    propensity: np.ndarray
    favourite_category: np.ndarray
    device: np.ndarray
    daytime: np.ndarray  # bool: daytime rather than evening shopper
    first_active_day: np.ndarray  # day index from which activity is allowed
    ar_decay_days: np.ndarray
    ng_signup_days: np.ndarray
    signup_day: np.ndarray  # day index of signup (negative = before the window)
    users_table: pa.Table  # raw.users rows (all users), sliced per day by signup_day


@dataclass
class Products:
    """The catalogue as category blocks sorted by price: product index = category * M + price rank."""

    ids: pa.Array
    prices: np.ndarray


def make_population(n: int, days: int, start: dt.date, rng: np.random.Generator) -> Population:
    """Draw ``n`` users for a window of ``days`` days starting on ``start``."""
    persona = allocate_personas(n, rng).astype(np.int8)
    width = max(7, len(str(n - 1)))
    user_ids = padded_ids("u", np.arange(n), width)

    intensity = rng.lognormal(0.0, _INTENSITY_SIGMA, n)
    propensity = rng.lognormal(0.0, _PROPENSITY_SIGMA, n)
    favourite_category = rng.integers(0, N_CATEGORIES, n)
    device = rng.choice(len(DEVICES), n, p=[0.55, 0.35, 0.10])
    daytime = rng.random(n) < DAYTIME_SHARE[persona]

    ar_decay_days = rng.integers(AR_DECAY_DAYS[0], AR_DECAY_DAYS[1] + 1, n).astype(float)
    ng_signup_days = rng.integers(NG_SIGNUP_DAYS[0], NG_SIGNUP_DAYS[1] + 1, n).astype(float)
    signup_day = _signup_day(persona, ng_signup_days, days, rng)
    start_us = day_start_us(start)
    signup_us = start_us + signup_day.astype(np.int64) * US_PER_DAY + rng.integers(0, US_PER_DAY, n)

    return Population(
        persona=persona,
        user_ids=user_ids,
        intensity=intensity,
        propensity=propensity,
        favourite_category=favourite_category,
        device=device,
        daytime=daytime,
        # No activity on or before the signup day, so no event can precede signup_ts.
        first_active_day=signup_day + 1,
        ar_decay_days=ar_decay_days,
        ng_signup_days=ng_signup_days,
        signup_day=signup_day,
        users_table=_users_table(user_ids, persona, signup_us, rng),
    )


def make_products(rng: np.random.Generator) -> Products:
    """Product ids and prices, laid out as category blocks sorted by price (index = cat*M + rank)."""
    m = PRODUCTS_PER_CATEGORY
    base = np.exp(rng.normal(3.3, 0.6, N_CATEGORIES))  # category price level (~27 median)
    prices = np.sort(base[:, None] * rng.lognormal(0.0, 0.8, (N_CATEGORIES, m)), axis=1)
    prices = np.round(np.clip(prices, 0.99, None), 2).ravel()
    return Products(ids=padded_ids("p", np.arange(N_CATEGORIES * m), 6), prices=prices)


def _signup_day(
    persona: np.ndarray, ng_signup_days: np.ndarray, days: int, rng: np.random.Generator
) -> np.ndarray:
    """Signup day index relative to the window start (negative = before the window)."""
    n = len(persona)
    # Most users signed up long before the window (up to ~3 years).
    signup_day = -rng.integers(1, 1100, n)
    late = ((persona == WS) | (persona == OC)) & (rng.random(n) < _LATE_SIGNUP_SHARE)
    signup_day = np.where(late, rng.integers(0, max(days, 1), n), signup_day)
    return np.where(persona == NG, (days - 1) - ng_signup_days.astype(int), signup_day)


def _users_table(
    user_ids: pa.Array, persona: np.ndarray, signup_us: np.ndarray, rng: np.random.Generator
) -> pa.Table:
    """raw.users rows: demographics by persona, with a few percent of attributes missing."""
    n = len(persona)
    birth = np.clip(np.round(rng.normal(BIRTH_MEAN[persona], 9.0)), 1940, 2008).astype(np.int32)
    gender = rng.choice(len(GENDERS), n, p=[0.49, 0.48, 0.03])
    occupation = rng.choice(len(OCCUPATIONS), n, p=[0.12, 0.38, 0.12, 0.16, 0.10, 0.07, 0.05])
    occupation = np.where(birth < 1960, OCCUPATIONS.index("retired"), occupation)
    tier = rng.choice(len(CITY_TIERS), n, p=[0.35, 0.40, 0.25])
    missing = {c: rng.random(n) < p for c, p in _MISSING_ATTR.items()}
    return pa.table(
        {
            "user_id": user_ids,
            "signup_ts": pa.array(signup_us, pa.timestamp("us", tz="UTC")),
            "birth_year": pa.array(birth, pa.int32(), mask=missing["birth_year"]),
            "gender": _with_nulls(pa.array(GENDERS).take(gender), missing["gender"]),
            "occupation": _with_nulls(pa.array(OCCUPATIONS).take(occupation), missing["occupation"]),
            "city_tier": _with_nulls(pa.array(CITY_TIERS).take(tier), missing["city_tier"]),
        },
        schema=tables.table("raw.users").arrow_schema(),
    )


def _with_nulls(values: pa.Array, missing: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(missing), pa.nulls(len(values), values.type), values)

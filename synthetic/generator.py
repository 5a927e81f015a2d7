"""Deterministic synthetic e-commerce warehouse with planted user personas.

``generate(users, days, end_date, seed)`` writes one ``ds`` partition per UTC day from
``end_date - (days - 1)`` to ``end_date`` of ``raw.events``, ``raw.orders`` and ``raw.users``, and the
unpartitioned answer key ``eval.planted_personas`` (read by evaluation code only).

Personas (share of users, fixed by largest-remainder allocation, then shuffled):

``high_value_loyal`` (12%)
    Active most days, several sessions, high conversion, expensive items, rarely a discount.
``bargain_hunter`` (18%)
    Moderate activity, many searches, cheap items, and most orders carry a 25-50% discount.
``window_shopper`` (20%)
    Many views and searches with long dwell, adds to cart sometimes, almost never buys.
``at_risk`` (15%)
    Fairly high activity and purchases until 28-42 days before ``end_date`` (per user), then the daily
    activity probability decays linearly towards ~2% at ``end_date``.
``new_and_growing`` (15%)
    Signs up 30-45 days before ``end_date`` (no activity before, and none on the signup day itself), then
    the daily activity probability ramps up linearly until ``end_date``.
``occasional`` (20%)
    Few active days, few views, sparse small purchases.

``at_risk`` and ``new_and_growing`` use the *same* per-active-day behaviour (sessions, views, carts,
conversion, prices, discounts); the base activity of ``new_and_growing`` is scaled (``_ng_base_scale``)
so that the expected totals over the last 28 days (``SEQUENCE_DAYS``) are equal. They differ only in
trajectory: fading vs ramping up. Totals are therefore useless to separate them; the trend is needed.

Realism knobs (constants below):

* per-user lognormal intensity (``_INTENSITY_SIGMA``) scaling activity and session counts, and a
  lognormal purchase propensity (``_PROPENSITY_SIGMA``), so personas overlap a little;
* weekday/weekend activity factors per persona (``_WEEKEND_BOOST``), normalised to a weekly mean of 1,
  and a small shared day-level shock;
* time of day: each user is an evening (peak ~20:30 UTC) or daytime (peak ~13:00) shopper, with a
  persona-dependent daytime share that rises on weekends;
* device: a preferred device per user (mobile/desktop/tablet), used for ~85% of sessions;
* a catalogue of ``_N_CATEGORIES x _PRODUCTS_PER_CATEGORY`` products with lognormal prices; personas pick
  price quantiles from different Beta distributions and favour one category;
* events within a session are causally ordered: add_to_cart refers to a viewed product,
  purchase/remove_from_cart to carted products, purchases come last; search events have a null
  ``product_id`` and price 0;
* one order per session with purchases: amount = sum(price * quantity) - discount, ``order_ts`` = last
  purchase event; status ~94% completed, 4% cancelled, 2% refunded;
* data-quality defects: ~0.7% exact duplicate event rows (same ``event_id``), ~0.1% events with a null
  ``user_id``, and a few percent missing user attributes (birth_year, gender, occupation, city_tier);
* dirt the cleaning stage must handle (``_add_dirt``, its own rng stream, so the behaviour above is
  untouched): ~0.05% extra rows with an event type outside the contract (``app_open``), ~0.05% extra
  copies of views with a negative price, ~0.03% views whose price is 100x (a feed error, winsorised), and
  late arrival: ~1% of a day's events land in the next day's raw partition and ~0.05% four days later
  (beyond the default 2-day lookback), keeping their true ``event_ts``. Late rows of the last days, due
  after ``end_date``, have not arrived yet and are not written. Orders always arrive on time.

Determinism: user-level attributes come from ``default_rng([seed, _STATIC_STREAM])``, each day from
``default_rng([seed, day_index])`` and its dirt from ``default_rng([seed, _DIRT_STREAM, day_index])``, so
the same arguments always produce the same Parquet content.
Everything is vectorised with numpy/pyarrow; the only Python loop is over days (one day in memory).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from core import tables

from core import warehouse
from core.settings import SEQUENCE_DAYS
from core.tables import EVENT_TYPES, ORDER_STATUSES

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

EV_VIEW, EV_SEARCH, EV_CART, EV_REMOVE, EV_PURCHASE = range(len(EVENT_TYPES))
DEVICES = ("mobile", "desktop", "tablet")
GENDERS = ("female", "male", "other")
OCCUPATIONS = ("student", "professional", "manager", "service", "self_employed", "retired", "unemployed")
CITY_TIERS = ("1", "2", "3")
CATEGORIES = (
    "electronics", "fashion", "home", "beauty", "sports", "books", "toys", "grocery", "garden", "automotive",
)

_STATIC_STREAM = 2**31 - 1  # rng stream for user/product attributes; day streams are 0..days-1
_DIRT_STREAM = 2**31 - 2  # rng streams [seed, _DIRT_STREAM, day] for the dirt of each day
_N_CATEGORIES = len(CATEGORIES)
_PRODUCTS_PER_CATEGORY = 250
_US_PER_DAY = 86_400_000_000

# Per-persona parameters, indexed by persona code (HV, BH, WS, AR, NG, OC).
# AR and NG share everything except base activity and trajectory (see module docstring).
_P_ACTIVE = np.array([0.80, 0.42, 0.45, 0.60, 0.60, 0.09])  # NG is rescaled by _ng_base_scale()
_WEEKEND_BOOST = np.array([1.05, 1.25, 1.35, 1.15, 1.15, 1.45])  # weekend / weekday activity ratio
_DAYTIME_SHARE = np.array([0.25, 0.40, 0.35, 0.30, 0.30, 0.45])  # users shopping mostly in daytime
_EXTRA_SESSIONS = np.array([0.80, 0.45, 0.60, 0.55, 0.55, 0.15])  # Poisson mean of sessions beyond 1
_SEARCHES = np.array([0.8, 2.0, 2.4, 1.1, 1.1, 0.6])  # per session
_EXTRA_VIEWS = np.array([3.5, 3.5, 5.5, 3.5, 3.5, 2.0])  # Poisson mean of views beyond 1, per session
_P_CART = np.array([0.22, 0.16, 0.09, 0.16, 0.16, 0.16])  # per view
_P_BUY_SESSION = np.array([0.75, 0.55, 0.05, 0.55, 0.55, 0.50])  # given at least one cart
_P_BUY_MORE = np.array([0.65, 0.55, 0.30, 0.55, 0.55, 0.30])  # each further cart item bought
_P_REMOVE = np.array([0.30, 0.35, 0.50, 0.30, 0.30, 0.30])  # each unbought cart item removed
_EXTRA_QTY = np.array([0.15, 0.45, 0.10, 0.15, 0.15, 0.05])  # Poisson mean of quantity beyond 1
_PRICE_BETA = np.array([[5.0, 1.8], [1.3, 5.0], [3.0, 3.0], [3.0, 2.5], [3.0, 2.5], [1.8, 4.0]])
_VIEW_DWELL_MEDIAN = np.array([25.0, 30.0, 75.0, 30.0, 30.0, 25.0])  # seconds
_P_DISCOUNT = np.array([0.08, 0.85, 0.20, 0.22, 0.22, 0.20])  # share of orders with a discount
_DISCOUNT_RANGE = np.array(
    [[0.03, 0.10], [0.25, 0.50], [0.05, 0.20], [0.05, 0.20], [0.05, 0.20], [0.05, 0.20]]
)  # share of gross
_BIRTH_MEAN = np.array([1978.0, 1988.0, 1994.0, 1985.0, 1992.0, 1983.0])

_INTENSITY_SIGMA = 0.35
_PROPENSITY_SIGMA = 0.25
_FAVOURITE_CATEGORY_SHARE = 0.55
_DUPLICATE_RATE = 0.007
_NULL_USER_RATE = 0.001
_MISSING_ATTR = {"birth_year": 0.04, "gender": 0.03, "occupation": 0.06, "city_tier": 0.03}
JUNK_EVENT_TYPE = "app_open"  # outside the event-type contract: cleaning quarantines it
_JUNK_TYPE_RATE = 0.0005  # extra rows with JUNK_EVENT_TYPE, per event
_NEGATIVE_PRICE_RATE = 0.0005  # extra copies of views with a negative price, per event
_PRICE_OUTLIER_RATE = 0.0003  # share of views whose price is 100x
_PRICE_OUTLIER_FACTOR = 100.0
_LATE_NEXT_DAY = 0.01  # share of a day's events arriving in the next day's partition
_LATE_FAR = 0.0005  # share arriving _LATE_FAR_DAYS later (beyond the default lookback of 2 days)
_LATE_FAR_DAYS = 4

# Trajectories, in days before end_date (b = 0 is end_date).
_AR_DECAY_DAYS = (28, 42)  # at_risk decay starts this many days before end (inclusive range)
_AR_FLOOR = 0.02
_NG_SIGNUP_DAYS = (30, 45)  # new_and_growing signs up this many days before end (inclusive range)
_NG_FLOOR = 0.15
_LATE_SIGNUP_SHARE = 0.10  # window shoppers / occasional users who sign up inside the window


@dataclass
class SeedSummary:
    users: int
    days: int
    start_date: str
    end_date: str
    events: int
    orders: int
    persona_counts: dict[str, int] = field(default_factory=dict)


def _ar_level(b: np.ndarray, decay_days: np.ndarray) -> np.ndarray:
    """at_risk activity multiplier: 1 until the decay starts, then linear down to the floor at b=0."""
    frac = np.clip(b / decay_days, 0.0, 1.0)
    return np.where(b >= decay_days, 1.0, _AR_FLOOR + (1.0 - _AR_FLOOR) * frac)


def _ng_level(b: np.ndarray, signup_days: np.ndarray) -> np.ndarray:
    """new_and_growing multiplier: 0 up to the signup day, then a linear ramp reaching 1 at b=0."""
    k = signup_days - b  # days since signup
    return np.where(k <= 0, 0.0, _NG_FLOOR + (1.0 - _NG_FLOOR) * k / signup_days)


def _ng_base_scale() -> float:
    """NG/AR base-activity ratio that equalises their expected 28-day totals (exact over the grids)."""
    b = np.arange(SEQUENCE_DAYS, dtype=float)[None, :]
    d = np.arange(_AR_DECAY_DAYS[0], _AR_DECAY_DAYS[1] + 1, dtype=float)[:, None]
    s = np.arange(_NG_SIGNUP_DAYS[0], _NG_SIGNUP_DAYS[1] + 1, dtype=float)[:, None]
    return float(_ar_level(b, d).sum(axis=1).mean() / _ng_level(b, s).sum(axis=1).mean())


def _allocate_personas(n: int, rng: np.random.Generator) -> np.ndarray:
    """Exact persona counts (largest remainder), shuffled: shares hold even for tiny populations."""
    raw = PERSONA_SHARES * n
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return rng.permutation(np.repeat(np.arange(len(PERSONAS)), counts))


def _with_nulls(values: pa.Array, missing: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(missing), pa.nulls(len(values), values.type), values)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded number, built in Arrow (no per-row Python)."""
    digits = pc.utf8_lpad(pa.array(numbers, pa.int64()).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _group_rank(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each group of size c, concatenated (rank of an item inside its group)."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total) - np.repeat(starts, counts)


def _day_start_us(day: dt.date) -> int:
    """Microseconds since the epoch at 00:00 UTC of ``day``."""
    return (day - dt.date(1970, 1, 1)).days * _US_PER_DAY


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


@dataclass
class _Population:
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


def _make_population(n: int, days: int, start: dt.date, rng: np.random.Generator) -> _Population:
    persona = _allocate_personas(n, rng).astype(np.int8)
    width = max(7, len(str(n - 1)))
    user_ids = _ids("u", np.arange(n), width)

    intensity = rng.lognormal(0.0, _INTENSITY_SIGMA, n)
    propensity = rng.lognormal(0.0, _PROPENSITY_SIGMA, n)
    favourite_category = rng.integers(0, _N_CATEGORIES, n)
    device = rng.choice(len(DEVICES), n, p=[0.55, 0.35, 0.10])
    daytime = rng.random(n) < _DAYTIME_SHARE[persona]

    ar_decay_days = rng.integers(_AR_DECAY_DAYS[0], _AR_DECAY_DAYS[1] + 1, n).astype(float)
    ng_signup_days = rng.integers(_NG_SIGNUP_DAYS[0], _NG_SIGNUP_DAYS[1] + 1, n).astype(float)

    # Signup day index relative to the window start: most users long before it (up to ~3 years).
    signup_day = -rng.integers(1, 1100, n)
    late = ((persona == WS) | (persona == OC)) & (rng.random(n) < _LATE_SIGNUP_SHARE)
    signup_day = np.where(late, rng.integers(0, max(days, 1), n), signup_day)
    signup_day = np.where(persona == NG, (days - 1) - ng_signup_days.astype(int), signup_day)
    # No activity on or before the signup day, so no event can precede signup_ts.
    first_active_day = signup_day + 1

    start_us = _day_start_us(start)
    signup_us = start_us + signup_day.astype(np.int64) * _US_PER_DAY + rng.integers(0, _US_PER_DAY, n)

    birth = np.clip(np.round(rng.normal(_BIRTH_MEAN[persona], 9.0)), 1940, 2008).astype(np.int32)
    gender = rng.choice(len(GENDERS), n, p=[0.49, 0.48, 0.03])
    occupation = rng.choice(len(OCCUPATIONS), n, p=[0.12, 0.38, 0.12, 0.16, 0.10, 0.07, 0.05])
    occupation = np.where(birth < 1960, OCCUPATIONS.index("retired"), occupation)
    tier = rng.choice(len(CITY_TIERS), n, p=[0.35, 0.40, 0.25])
    missing = {c: rng.random(n) < p for c, p in _MISSING_ATTR.items()}

    users_table = pa.table(
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
    return _Population(
        persona=persona,
        user_ids=user_ids,
        intensity=intensity,
        propensity=propensity,
        favourite_category=favourite_category,
        device=device,
        daytime=daytime,
        first_active_day=first_active_day,
        ar_decay_days=ar_decay_days,
        ng_signup_days=ng_signup_days,
        signup_day=signup_day,
        users_table=users_table,
    )


def _make_products(rng: np.random.Generator) -> tuple[pa.Array, np.ndarray]:
    """Product ids and prices, laid out as category blocks sorted by price (index = cat*M + rank)."""
    m = _PRODUCTS_PER_CATEGORY
    base = np.exp(rng.normal(3.3, 0.6, _N_CATEGORIES))  # category price level (~27 median)
    prices = np.sort(base[:, None] * rng.lognormal(0.0, 0.8, (_N_CATEGORIES, m)), axis=1)
    prices = np.round(np.clip(prices, 0.99, None), 2).ravel()
    return _ids("p", np.arange(_N_CATEGORIES * m), 6), prices


def _weekday_factor(persona: np.ndarray, weekday: int) -> np.ndarray:
    """Activity factor for a weekday (0=Mon): weekend/weekday ratio = boost, weekly mean = 1."""
    boost = _WEEKEND_BOOST[persona]
    norm = (5.0 + 2.0 * boost) / 7.0
    return (boost if weekday >= 5 else 1.0) / norm


def _day(
    d: int,
    days: int,
    date: dt.date,
    pop: _Population,
    product_ids: pa.Array,
    product_prices: np.ndarray,
    ng_scale: float,
    rng: np.random.Generator,
) -> tuple[pa.Table, pa.Table]:
    """Generate one UTC day: (events, orders)."""
    persona = pop.persona
    b = float(days - 1 - d)  # days before end_date

    # --- who is active today -------------------------------------------------------------------
    level = np.ones(len(persona))
    level = np.where(persona == AR, _ar_level(b, pop.ar_decay_days), level)
    level = np.where(persona == NG, ng_scale * _ng_level(b, pop.ng_signup_days), level)
    shock = np.exp(rng.normal(0.0, 0.05))  # shared day-level noise (weather, campaigns)
    p_active = _P_ACTIVE[persona] * level * _weekday_factor(persona, date.weekday())
    p_active = np.clip(p_active * np.sqrt(pop.intensity) * shock, 0.0, 0.95)
    p_active[d < pop.first_active_day] = 0.0
    active = np.flatnonzero(rng.random(len(persona)) < p_active)

    # --- sessions -------------------------------------------------------------------------------
    ap = persona[active]
    n_sess = 1 + rng.poisson(_EXTRA_SESSIONS[ap] * pop.intensity[active])
    s_user = np.repeat(active, n_sess)
    sp = persona[s_user]
    n_s = len(s_user)
    s_device = np.where(rng.random(n_s) < 0.85, pop.device[s_user], rng.integers(0, len(DEVICES), n_s))

    n_search = rng.poisson(_SEARCHES[sp])
    n_view = 1 + rng.poisson(_EXTRA_VIEWS[sp] * np.sqrt(pop.intensity[s_user]))
    n_cart = rng.binomial(n_view, _P_CART[sp])
    p_buy = np.clip(_P_BUY_SESSION[sp] * pop.propensity[s_user], 0.0, 0.97)
    buys = (n_cart > 0) & (rng.random(n_s) < p_buy)
    n_purch = np.where(buys, 1 + rng.binomial(np.maximum(n_cart - 1, 0), _P_BUY_MORE[sp]), 0)
    n_remove = rng.binomial(n_cart - n_purch, _P_REMOVE[sp])

    # --- views: product choice by persona price taste and favourite category ----------------------
    v_sess = np.repeat(np.arange(n_s), n_view)
    v_user, vp = s_user[v_sess], sp[v_sess]
    n_v = len(v_sess)
    fav = rng.random(n_v) < _FAVOURITE_CATEGORY_SHARE
    v_cat = np.where(fav, pop.favourite_category[v_user], rng.integers(0, _N_CATEGORIES, n_v))
    q = rng.beta(_PRICE_BETA[vp, 0], _PRICE_BETA[vp, 1])
    v_prod = v_cat * _PRODUCTS_PER_CATEGORY + np.minimum((q * _PRODUCTS_PER_CATEGORY).astype(int),
                                                         _PRODUCTS_PER_CATEGORY - 1)
    v_key = rng.random(n_v) * 0.9  # position inside the session (sorted later)

    # --- carts refer to a viewed product of the same session -------------------------------------
    c_sess = np.repeat(np.arange(n_s), n_cart)
    c_view = np.repeat(_offsets(n_view), n_cart) + (rng.random(len(c_sess)) * n_view[c_sess]).astype(int)
    c_prod = v_prod[c_view]
    c_key = v_key[c_view] + 0.001 + rng.random(len(c_sess)) * 0.01
    c_qty = 1 + rng.poisson(_EXTRA_QTY[sp[c_sess]])

    # --- purchases take the first carts of the session, removals the next ones ---------------------
    cart_off = _offsets(n_cart)
    pu_sess = np.repeat(np.arange(n_s), n_purch)
    pu_cart = np.repeat(cart_off, n_purch) + _group_rank(n_purch)
    rm_sess = np.repeat(np.arange(n_s), n_remove)
    rm_cart = np.repeat(cart_off + n_purch, n_remove) + _group_rank(n_remove)
    rm_key = c_key[rm_cart] + (1.0 - c_key[rm_cart]) * rng.random(len(rm_sess)) * 0.9

    # --- searches: category of interest, no product ----------------------------------------------
    se_sess = np.repeat(np.arange(n_s), n_search)
    n_se = len(se_sess)
    se_fav = rng.random(n_se) < _FAVOURITE_CATEGORY_SHARE
    se_cat = np.where(se_fav, pop.favourite_category[s_user[se_sess]], rng.integers(0, _N_CATEGORIES, n_se))

    # --- assemble events (grouped by session, ordered by key inside it) ----------------------------
    e_sess = np.concatenate([v_sess, se_sess, c_sess, rm_sess, pu_sess])
    e_type = np.concatenate([
        np.full(n_v, EV_VIEW), np.full(n_se, EV_SEARCH), np.full(len(c_sess), EV_CART),
        np.full(len(rm_sess), EV_REMOVE), np.full(len(pu_sess), EV_PURCHASE),
    ]).astype(np.int8)
    e_prod = np.concatenate([v_prod, np.full(n_se, -1), c_prod, c_prod[rm_cart], c_prod[pu_cart]])
    e_cat = np.where(e_prod >= 0, e_prod // _PRODUCTS_PER_CATEGORY, np.concatenate(
        [np.zeros(n_v, int), se_cat, np.zeros(len(c_sess) + len(rm_sess) + len(pu_sess), int)]))
    e_qty = np.concatenate([np.ones(n_v + n_se, int), c_qty, c_qty[rm_cart], c_qty[pu_cart]])
    e_key = np.concatenate([
        v_key, rng.random(n_se) * 0.9, c_key, rm_key, 1.0 + rng.random(len(pu_sess)),
    ])
    order = np.lexsort((e_key, e_sess))
    e_sess, e_type, e_prod = e_sess[order], e_type[order], e_prod[order]
    e_cat, e_qty = e_cat[order], e_qty[order]
    n_e = len(e_sess)

    # Dwell: long views for window shoppers, short clicks for carts; lognormal spread.
    dwell_median = np.array([0.0, 8.0, 6.0, 4.0, 30.0])[e_type]
    dwell_median = np.where(e_type == EV_VIEW, _VIEW_DWELL_MEDIAN[sp[e_sess]], dwell_median)
    dwell = np.round(dwell_median * rng.lognormal(0.0, 0.6, n_e), 1)

    # Session start by time-of-day habit (weekends shift some evening shoppers to daytime).
    weekend = date.weekday() >= 5
    day_user = pop.daytime[s_user] | (weekend & (rng.random(n_s) < 0.2))
    hour = np.where(day_user, rng.normal(13.0, 2.8, n_s), rng.normal(20.5, 2.2, n_s)) % 24.0
    start = (hour * 3600e6).astype(np.int64)
    ev_off = _offsets(np.bincount(e_sess, minlength=n_s))
    elapsed = np.cumsum(dwell * 1e6) - dwell * 1e6  # time spent before each event, global
    elapsed = (elapsed - elapsed[np.repeat(ev_off, np.bincount(e_sess, minlength=n_s))]).astype(np.int64)
    last_event = ev_off + np.bincount(e_sess, minlength=n_s) - 1  # events are grouped by session
    duration = elapsed[last_event]
    start = np.clip(start, 0, _US_PER_DAY - 1 - duration)  # keep the whole session inside the day
    e_ts = _day_start_us(date) + start[e_sess] + elapsed

    price = np.where(e_prod >= 0, product_prices[np.maximum(e_prod, 0)], 0.0)

    # --- orders: one per session with purchases ---------------------------------------------------
    is_pu = e_type == EV_PURCHASE
    o_sess = np.flatnonzero(n_purch > 0)
    gross = np.round(np.bincount(e_sess[is_pu], weights=(price * e_qty)[is_pu], minlength=n_s)[o_sess], 2)
    items = np.bincount(e_sess[is_pu], weights=e_qty[is_pu], minlength=n_s)[o_sess].astype(np.int32)
    op = sp[o_sess]
    n_o = len(o_sess)
    has_disc = rng.random(n_o) < _P_DISCOUNT[op]
    share = _DISCOUNT_RANGE[op, 0] + rng.random(n_o) * (_DISCOUNT_RANGE[op, 1] - _DISCOUNT_RANGE[op, 0])
    discount = np.round(np.where(has_disc, gross * share, 0.0), 2)
    amount = np.round(gross - discount, 2)
    o_ts = e_ts[last_event]  # purchases sort last in their session: the last one closes the order
    status = rng.choice(len(ORDER_STATUSES), n_o, p=[0.94, 0.04, 0.02])
    ymd = date.strftime("%Y%m%d")
    orders = pa.table(
        {
            "order_id": _ids(f"o{ymd}", np.arange(n_o), 7),
            "user_id": pop.user_ids.take(pa.array(s_user[o_sess])),
            "order_ts": pa.array(o_ts[o_sess], pa.timestamp("us", tz="UTC")),
            "amount": pa.array(amount, pa.float64()),
            "item_count": pa.array(items, pa.int32()),
            "discount_amount": pa.array(discount, pa.float64()),
            "status": pa.array(ORDER_STATUSES).take(pa.array(status)),
        },
        schema=tables.table("raw.orders").arrow_schema(),
    )

    # --- arrival order, ids, and data-quality defects ---------------------------------------------
    by_time = np.argsort(e_ts, kind="stable")  # event_id follows arrival order
    dups = np.flatnonzero(rng.random(n_e) < _DUPLICATE_RATE)
    null_user = rng.random(n_e) < _NULL_USER_RATE
    serial = np.empty(n_e, np.int64)
    serial[by_time] = np.arange(n_e)
    rows = np.concatenate([np.arange(n_e), dups])  # duplicates are exact copies of the row
    rows = rows[np.argsort(e_ts[rows], kind="stable")]

    e_user = s_user[e_sess]
    prod_idx = e_prod[rows]
    events = pa.table(
        {
            "event_id": _ids(f"e{ymd}", serial[rows], 8),
            "user_id": pop.user_ids.take(pa.array(e_user[rows], mask=null_user[rows])),
            "event_ts": pa.array(e_ts[rows], pa.timestamp("us", tz="UTC")),
            "event_type": pa.array(EVENT_TYPES).take(pa.array(e_type[rows])),
            "product_id": product_ids.take(pa.array(prod_idx, mask=prod_idx < 0)),
            "category": pa.array(CATEGORIES).take(pa.array(e_cat[rows])),
            "price": pa.array(price[rows], pa.float64()),
            "quantity": pa.array(e_qty[rows], pa.int32()),
            "session_id": _ids(f"s{ymd}", e_sess[rows], 7),
            "dwell_seconds": pa.array(dwell[rows], pa.float64()),
            "device": pa.array(DEVICES).take(pa.array(s_device[e_sess][rows])),
        },
        schema=tables.table("raw.events").arrow_schema(),
    )
    return events, orders


def _add_dirt(events: pa.Table, ymd: str, rng: np.random.Generator) -> dict[int, pa.Table]:
    """Dirty one day's events; returns {arrival delay in days: rows arriving then} (0 = on time)."""
    n = events.num_rows
    event_type = events.column("event_type").to_numpy(zero_copy_only=False)
    views = np.flatnonzero(event_type == "view")
    price = events.column("price").to_numpy().copy()
    outliers = views[rng.random(len(views)) < _PRICE_OUTLIER_RATE]
    event_id = events.column("event_id").to_numpy(zero_copy_only=False)
    outliers = np.isin(event_id, event_id[outliers])  # duplicates of an outlier stay exact copies
    price[outliers] = np.round(price[outliers] * _PRICE_OUTLIER_FACTOR, 2)
    events = events.set_column(events.schema.get_field_index("price"), "price", pa.array(price, pa.float64()))

    # Junk rows are extra copies with their own ids: dropping them gives back the clean day exactly.
    picked = rng.choice(n, rng.binomial(n, _JUNK_TYPE_RATE)) if n else []
    junk_type = events.take(pa.array(picked, pa.int64()))
    junk_type = junk_type.set_column(junk_type.schema.get_field_index("event_type"), "event_type",
                                     pa.array([JUNK_EVENT_TYPE] * junk_type.num_rows, pa.string()))
    k = rng.binomial(len(views), _NEGATIVE_PRICE_RATE * n / max(len(views), 1)) if len(views) else 0
    negative = events.take(pa.array(rng.choice(views, k) if k else [], pa.int64()))
    negative = negative.set_column(negative.schema.get_field_index("price"), "price",
                                   pc.negate(pc.add(negative.column("price"), 1.0)))
    junk = pa.concat_tables([junk_type, negative])
    junk = junk.set_column(0, "event_id", _ids(f"e{ymd}x", np.arange(junk.num_rows), 7))
    events = pa.concat_tables([events, junk])

    u = rng.random(events.num_rows)
    late_next = u < _LATE_NEXT_DAY
    late_far = (u >= _LATE_NEXT_DAY) & (u < _LATE_NEXT_DAY + _LATE_FAR)
    return {
        0: events.filter(pa.array(~(late_next | late_far))),
        1: events.filter(pa.array(late_next)),
        _LATE_FAR_DAYS: events.filter(pa.array(late_far)),
    }


def generate(users: int, days: int, end_date: str, seed: int = 42, progress: bool = True) -> SeedSummary:
    """Write raw.events/raw.orders/raw.users for each ds in the window, and eval.planted_personas."""
    if users < len(PERSONAS) or days < 1:
        raise ValueError(f"need at least {len(PERSONAS)} users and 1 day (got {users}, {days})")
    end = dt.date.fromisoformat(end_date)
    start = end - dt.timedelta(days=days - 1)

    static = np.random.default_rng([seed, _STATIC_STREAM])
    pop = _make_population(users, days, start, static)
    product_ids, product_prices = _make_products(static)
    ng_scale = _ng_base_scale() * _P_ACTIVE[AR] / _P_ACTIVE[NG]

    warehouse.write_arrow(
        "eval.planted_personas",
        pa.table({"user_id": pop.user_ids, "persona": pa.array(PERSONAS).take(pa.array(pop.persona))}),
    )

    n_events = n_orders = 0
    arriving: dict[int, list[pa.Table]] = {}  # day index -> late rows that arrive in its partition
    for d in tqdm(range(days), disable=not progress, desc="synthetic warehouse", unit="day"):
        date = start + dt.timedelta(days=d)
        ds = date.isoformat()
        events, orders = _day(d, days, date, pop, product_ids, product_prices, ng_scale,
                              np.random.default_rng([seed, d]))
        by_delay = _add_dirt(events, date.strftime("%Y%m%d"), np.random.default_rng([seed, _DIRT_STREAM, d]))
        for delay, rows in by_delay.items():
            if delay:
                arriving.setdefault(d + delay, []).append(rows)
        events = pa.concat_tables([by_delay[0], *arriving.pop(d, [])])
        warehouse.write_arrow("raw.events", events, ds)
        warehouse.write_arrow("raw.orders", orders, ds)
        warehouse.write_arrow("raw.users", pop.users_table.filter(pa.array(pop.signup_day <= d)), ds)
        n_events += events.num_rows
        n_orders += orders.num_rows

    counts = np.bincount(pop.persona, minlength=len(PERSONAS))
    return SeedSummary(
        users=users,
        days=days,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        events=n_events,
        orders=n_orders,
        persona_counts={p: int(c) for p, c in zip(PERSONAS, counts)},
    )

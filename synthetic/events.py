"""The events of a day's sessions, causally ordered, timed, and written out as ``raw.events`` rows.

Inside a session: views pick products by the persona's price taste and favourite category;
add_to_cart refers to a viewed product; the first carts are purchased, the next ones removed; searches
name a category but no product; purchases come last. Each event type is drawn as a ``_Block``;
``draw_events`` draws them in a fixed rng order, then sorts them into sessions and times them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from core import tables
from core.tables import EVENT_TYPES
from synthetic.columns import US_PER_DAY, day_start_us, padded_ids
from synthetic.personas import EXTRA_QTY, PRICE_BETA, VIEW_DWELL_MEDIAN
from synthetic.population import (
    CATEGORIES,
    DEVICES,
    N_CATEGORIES,
    PRODUCTS_PER_CATEGORY,
    Population,
    Products,
)
from synthetic.sessions import Sessions

EV_VIEW, EV_SEARCH, EV_CART, EV_REMOVE, EV_PURCHASE = range(len(EVENT_TYPES))

_FAVOURITE_CATEGORY_SHARE = 0.55
_DWELL_MEDIAN = np.array([0.0, 8.0, 6.0, 4.0, 30.0])  # seconds, by event type; views by persona instead
_DUPLICATE_RATE = 0.007
_NULL_USER_RATE = 0.001


@dataclass
class Events:
    """A day's events, grouped by session and causally ordered inside it (element = event)."""

    session: np.ndarray  # session index (see Sessions)
    type: np.ndarray  # EV_* code
    product: np.ndarray  # product index, -1 for searches
    category: np.ndarray  # category index
    quantity: np.ndarray
    price: np.ndarray
    dwell: np.ndarray  # seconds
    ts: np.ndarray  # microseconds since the epoch
    session_end_ts: np.ndarray  # per session: ts of its last event


@dataclass
class _Block:
    """The events of one type, in no particular order yet."""

    session: np.ndarray
    product: np.ndarray  # -1 for searches
    category: np.ndarray
    quantity: np.ndarray
    key: np.ndarray  # position inside the session: events are sorted by (session, key)


def draw_events(
    s: Sessions, pop: Population, products: Products, date: dt.date, rng: np.random.Generator
) -> Events:
    """Draw every event of the sessions ``s`` on ``date``, in session order."""
    # This call order is the order of the rng draws: changing it changes the data of every seed.
    views = _draw_views(s, pop, rng)
    carts = _draw_carts(s, views, rng)
    removals = _draw_removals(s, carts, rng)
    searches = _draw_searches(s, pop, rng)
    purchases = _draw_purchases(s, carts, rng)

    # In EVENT_TYPES order, so a block's position is its EV_* code; lexsort is stable, ties keep it.
    blocks = (views, searches, carts, removals, purchases)
    session = np.concatenate([blk.session for blk in blocks])
    event_type = np.repeat(np.arange(len(blocks)), [len(blk.session) for blk in blocks]).astype(np.int8)
    order = np.lexsort((np.concatenate([blk.key for blk in blocks]), session))
    product = np.concatenate([blk.product for blk in blocks])[order]
    session, event_type = session[order], event_type[order]

    dwell = _draw_dwell(event_type, s.persona[session], rng)
    ts, session_end_ts = _draw_timestamps(session, dwell, s, pop, date, rng)
    return Events(
        session=session,
        type=event_type,
        product=product,
        category=np.concatenate([blk.category for blk in blocks])[order],
        quantity=np.concatenate([blk.quantity for blk in blocks])[order],
        price=np.where(product >= 0, products.prices[np.maximum(product, 0)], 0.0),
        dwell=dwell,
        ts=ts,
        session_end_ts=session_end_ts,
    )


def events_table(
    ev: Events, s: Sessions, pop: Population, products: Products, ymd: str, rng: np.random.Generator
) -> pa.Table:
    """raw.events rows in arrival (time) order, with ~0.7% exact duplicates and ~0.1% null users."""
    n_e = len(ev.session)
    by_time = np.argsort(ev.ts, kind="stable")  # event_id follows arrival order
    dups = np.flatnonzero(rng.random(n_e) < _DUPLICATE_RATE)
    null_user = rng.random(n_e) < _NULL_USER_RATE
    serial = np.empty(n_e, np.int64)
    serial[by_time] = np.arange(n_e)
    rows = np.concatenate([np.arange(n_e), dups])  # duplicates are exact copies of the row
    rows = rows[np.argsort(ev.ts[rows], kind="stable")]

    e_user = s.user[ev.session]
    prod_idx = ev.product[rows]
    return pa.table(
        {
            "event_id": padded_ids(f"e{ymd}", serial[rows], 8),
            "user_id": pop.user_ids.take(pa.array(e_user[rows], mask=null_user[rows])),
            "event_ts": pa.array(ev.ts[rows], pa.timestamp("us", tz="UTC")),
            "event_type": pa.array(EVENT_TYPES).take(pa.array(ev.type[rows])),
            "product_id": products.ids.take(pa.array(prod_idx, mask=prod_idx < 0)),
            "category": pa.array(CATEGORIES).take(pa.array(ev.category[rows])),
            "price": pa.array(ev.price[rows], pa.float64()),
            "quantity": pa.array(ev.quantity[rows], pa.int32()),
            "session_id": padded_ids(f"s{ymd}", ev.session[rows], 7),
            "dwell_seconds": pa.array(ev.dwell[rows], pa.float64()),
            "device": pa.array(DEVICES).take(pa.array(s.device[ev.session][rows])),
        },
        schema=tables.table("raw.events").arrow_schema(),
    )


def _draw_views(s: Sessions, pop: Population, rng: np.random.Generator) -> _Block:
    """Views: product choice by persona price taste and favourite category."""
    v_sess = np.repeat(np.arange(len(s)), s.n_view)
    v_user, vp = s.user[v_sess], s.persona[v_sess]
    n_v = len(v_sess)
    fav = rng.random(n_v) < _FAVOURITE_CATEGORY_SHARE
    v_cat = np.where(fav, pop.favourite_category[v_user], rng.integers(0, N_CATEGORIES, n_v))
    q = rng.beta(PRICE_BETA[vp, 0], PRICE_BETA[vp, 1])  # price quantile inside the category
    rank = np.minimum((q * PRODUCTS_PER_CATEGORY).astype(int), PRODUCTS_PER_CATEGORY - 1)
    v_prod = v_cat * PRODUCTS_PER_CATEGORY + rank
    v_key = rng.random(n_v) * 0.9  # before 1, where purchases start
    return _Block(v_sess, v_prod, v_prod // PRODUCTS_PER_CATEGORY, np.ones(n_v, int), v_key)


def _draw_carts(s: Sessions, views: _Block, rng: np.random.Generator) -> _Block:
    """Carts: each refers to a viewed product of the same session and comes just after that view."""
    c_sess = np.repeat(np.arange(len(s)), s.n_cart)
    picked = (rng.random(len(c_sess)) * s.n_view[c_sess]).astype(int)
    c_view = np.repeat(_offsets(s.n_view), s.n_cart) + picked
    c_prod = views.product[c_view]
    c_key = views.key[c_view] + 0.001 + rng.random(len(c_sess)) * 0.01
    c_qty = 1 + rng.poisson(EXTRA_QTY[s.persona[c_sess]])
    return _Block(c_sess, c_prod, c_prod // PRODUCTS_PER_CATEGORY, c_qty, c_key)


def _draw_removals(s: Sessions, carts: _Block, rng: np.random.Generator) -> _Block:
    """Removals: the cart items after the bought ones, each some time after its add_to_cart."""
    idx = np.repeat(_offsets(s.n_cart) + s.n_purchase, s.n_remove) + _group_rank(s.n_remove)
    key = carts.key[idx] + (1.0 - carts.key[idx]) * rng.random(len(idx)) * 0.9
    return _from_carts(carts, idx, key)


def _draw_searches(s: Sessions, pop: Population, rng: np.random.Generator) -> _Block:
    """Searches: a category of interest, no product, price 0."""
    se_sess = np.repeat(np.arange(len(s)), s.n_search)
    n_se = len(se_sess)
    se_fav = rng.random(n_se) < _FAVOURITE_CATEGORY_SHARE
    se_cat = np.where(se_fav, pop.favourite_category[s.user[se_sess]], rng.integers(0, N_CATEGORIES, n_se))
    return _Block(se_sess, np.full(n_se, -1), se_cat, np.ones(n_se, int), rng.random(n_se) * 0.9)


def _draw_purchases(s: Sessions, carts: _Block, rng: np.random.Generator) -> _Block:
    """Purchases: the first ``n_purchase`` cart items of the session, after all its other events."""
    idx = np.repeat(_offsets(s.n_cart), s.n_purchase) + _group_rank(s.n_purchase)
    return _from_carts(carts, idx, 1.0 + rng.random(len(idx)))  # keys of other events are < 1


def _from_carts(carts: _Block, idx: np.ndarray, key: np.ndarray) -> _Block:
    """Events on the cart items ``idx`` (purchases, removals): same session, product and quantity."""
    product = carts.product[idx]
    return _Block(carts.session[idx], product, product // PRODUCTS_PER_CATEGORY, carts.quantity[idx], key)


def _draw_dwell(event_type: np.ndarray, persona: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dwell: long views for window shoppers, short clicks for carts; lognormal spread."""
    dwell_median = np.where(event_type == EV_VIEW, VIEW_DWELL_MEDIAN[persona], _DWELL_MEDIAN[event_type])
    return np.round(dwell_median * rng.lognormal(0.0, 0.6, len(event_type)), 1)


def _draw_timestamps(
    session: np.ndarray, dwell: np.ndarray, s: Sessions, pop: Population, date: dt.date,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(ts per event, ts of each session's last event): sessions start by the user's time-of-day habit
    and run event after event, each one dwell long, inside ``date``."""
    n_s = len(s)
    # Weekends shift some evening shoppers to daytime.
    weekend = date.weekday() >= 5
    day_user = pop.daytime[s.user] | (weekend & (rng.random(n_s) < 0.2))
    hour = np.where(day_user, rng.normal(13.0, 2.8, n_s), rng.normal(20.5, 2.2, n_s)) % 24.0
    start = (hour * 3600e6).astype(np.int64)
    per_session = np.bincount(session, minlength=n_s)
    ev_off = _offsets(per_session)
    elapsed = np.cumsum(dwell * 1e6) - dwell * 1e6  # time spent before each event, global
    elapsed = (elapsed - elapsed[np.repeat(ev_off, per_session)]).astype(np.int64)
    last_event = ev_off + per_session - 1  # events are grouped by session
    start = np.clip(start, 0, US_PER_DAY - 1 - elapsed[last_event])  # keep the whole session inside the day
    ts = day_start_us(date) + start[session] + elapsed
    return ts, ts[last_event]


def _offsets(counts: np.ndarray) -> np.ndarray:
    """Start of each group in the concatenation of groups of sizes ``counts``."""
    return np.cumsum(counts) - counts


def _group_rank(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each group of size c, concatenated (rank of an item inside its group)."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(_offsets(counts), counts)

"""Deterministic synthetic e-commerce warehouse with planted user personas.

``generate(users, days, end_date, seed)`` writes one ``ds`` partition per UTC day from
``end_date - (days - 1)`` to ``end_date`` of ``raw.events``, ``raw.orders`` and ``raw.users`` (those of the
shop's ``SEGMENTS_RAW_TABLES``: ``raw.orders`` alone is the orders-only shop of docs/data-contract.md), and
the unpartitioned answer key ``eval.planted_personas`` (read by evaluation code only). Like ``segments
ingest``, it writes the empty completeness marker ``_SUCCESS`` (``core.warehouse.SUCCESS_MARKER``) into each
raw partition, after its data: the daily DAG waits for it; readers take ``*.parquet`` only.

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
conversion, prices, discounts); the base activity of ``new_and_growing`` is scaled (``ng_activity_scale``)
so that the expected totals over the last 28 days (``SEQUENCE_DAYS``) are equal. They differ only in
trajectory: fading vs ramping up. Totals are therefore useless to separate them; the trend is needed.

Realism knobs (constants in the module that uses them):

* per-user lognormal intensity (``population._INTENSITY_SIGMA``) scaling activity and session counts,
  and a lognormal purchase propensity (``population._PROPENSITY_SIGMA``), so personas overlap a little;
* weekday/weekend activity factors per persona (``personas.WEEKEND_BOOST``), normalised to a weekly
  mean of 1, and a small shared day-level shock;
* time of day: each user is an evening (peak ~20:30 UTC) or daytime (peak ~13:00) shopper, with a
  persona-dependent daytime share that rises on weekends;
* device: a preferred device per user (mobile/desktop/tablet), used for ~85% of sessions;
* a catalogue of ``population.N_CATEGORIES x PRODUCTS_PER_CATEGORY`` products with lognormal prices;
  personas pick price quantiles from different Beta distributions and favour one category;
* events within a session are causally ordered: add_to_cart refers to a viewed product,
  purchase/remove_from_cart to carted products, purchases come last; search events have a null
  ``product_id`` and price 0;
* one order per session with purchases: amount = sum(price * quantity) - discount, ``order_ts`` = last
  purchase event; status ~94% completed, 4% cancelled, 2% refunded;
* data-quality defects: ~0.7% exact duplicate event rows (same ``event_id``), ~0.1% events with a null
  ``user_id``, and a few percent missing user attributes (birth_year, gender, occupation, city_tier);
* dirt the cleaning stage must handle (``dirt.add_dirt``, its own rng stream, so the behaviour above is
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
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from core import settings as settings_mod
from core import warehouse
from synthetic.day import simulate_day
from synthetic.dirt import add_dirt
from synthetic.personas import PERSONAS
from synthetic.population import make_population, make_products

_STATIC_STREAM = 2**31 - 1  # rng stream for user/product attributes; day streams are 0..days-1
_DIRT_STREAM = 2**31 - 2  # rng streams [seed, _DIRT_STREAM, day] for the dirt of each day


@dataclass
class SeedSummary:
    """What ``generate`` wrote: the window, row counts over all partitions, users per persona."""

    users: int
    days: int
    start_date: str
    end_date: str
    events: int
    orders: int
    persona_counts: dict[str, int] = field(default_factory=dict)


def generate(users: int, days: int, end_date: str, seed: int = 42, progress: bool = True,
             raw_tables: tuple[str, ...] | None = None) -> SeedSummary:
    """Write raw.events/raw.orders/raw.users for each ds in the window, and eval.planted_personas.

    ``raw_tables``: which raw tables to write (default: the shop's, ``SEGMENTS_RAW_TABLES``); the others
    are simulated all the same, so an orders-only warehouse holds exactly the orders of the full one.
    """
    written = set(settings_mod.load().raw_tables if raw_tables is None else raw_tables)
    if users < len(PERSONAS) or days < 1:
        raise ValueError(f"need at least {len(PERSONAS)} users and 1 day (got {users}, {days})")
    end = dt.date.fromisoformat(end_date)
    start = end - dt.timedelta(days=days - 1)

    static = np.random.default_rng([seed, _STATIC_STREAM])
    pop = make_population(users, days, start, static)
    products = make_products(static)

    warehouse.write_arrow(
        "eval.planted_personas",
        pa.table({"user_id": pop.user_ids, "persona": pa.array(PERSONAS).take(pa.array(pop.persona))}),
    )

    n_events = n_orders = 0
    arriving: dict[int, list[pa.Table]] = {}  # day index -> late rows that arrive in its partition
    for d in tqdm(range(days), disable=not progress, desc="synthetic warehouse", unit="day"):
        date = start + dt.timedelta(days=d)
        ds = date.isoformat()
        events, orders = simulate_day(d, days, date, pop, products, np.random.default_rng([seed, d]))
        by_delay = add_dirt(events, date.strftime("%Y%m%d"), np.random.default_rng([seed, _DIRT_STREAM, d]))
        for delay, rows in by_delay.items():
            if delay:
                arriving.setdefault(d + delay, []).append(rows)
        events = pa.concat_tables([by_delay[0], *arriving.pop(d, [])])
        if "raw.events" in written:
            _write_raw("raw.events", events, ds)
            n_events += events.num_rows
        if "raw.orders" in written:
            _write_raw("raw.orders", orders, ds)
            n_orders += orders.num_rows
        if "raw.users" in written:
            _write_raw("raw.users", pop.users_table.filter(pa.array(pop.signup_day <= d)), ds)

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


def _write_raw(name: str, data: pa.Table, ds: str) -> None:
    """Replace one raw partition, then mark it complete: the marker is written last, as ``segments ingest``
    does, so whoever waits for it (the daily DAG) never reads a partition that is still being written."""
    warehouse.write_arrow(name, data, ds)
    (Path(warehouse.partition_path(name, ds)) / warehouse.SUCCESS_MARKER).touch()

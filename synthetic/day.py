"""One simulated UTC day: who is active, their sessions, events and orders, before dirt and late arrival."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from synthetic.events import draw_events, events_table
from synthetic.orders import orders_table
from synthetic.population import Population, Products
from synthetic.sessions import active_users, draw_sessions


def simulate_day(
    d: int, days: int, date: dt.date, pop: Population, products: Products, rng: np.random.Generator
) -> tuple[pa.Table, pa.Table]:
    """Day ``d`` of ``days``, falling on ``date``: (raw.events rows, raw.orders rows).

    Every stage draws from ``rng``; they run in a fixed order, which is part of the output for a seed.
    """
    sessions = draw_sessions(active_users(d, days, date, pop, rng), pop, rng)
    events = draw_events(sessions, pop, products, date, rng)
    ymd = date.strftime("%Y%m%d")
    orders = orders_table(events, sessions, pop, ymd, rng)
    return events_table(events, sessions, pop, products, ymd, rng), orders

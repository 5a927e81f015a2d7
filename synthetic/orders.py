"""One order per session with purchases, as ``raw.orders`` rows: amount, discount, status."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from core import tables
from core.tables import ORDER_STATUSES
from synthetic.columns import padded_ids
from synthetic.events import EV_PURCHASE, Events
from synthetic.personas import DISCOUNT_RANGE, P_DISCOUNT
from synthetic.population import Population
from synthetic.sessions import Sessions

_STATUS_SHARES = [0.94, 0.04, 0.02]  # by ORDER_STATUSES: completed, cancelled, refunded


def orders_table(ev: Events, s: Sessions, pop: Population, ymd: str, rng: np.random.Generator) -> pa.Table:
    """raw.orders rows: amount = sum(price * quantity) - discount, order_ts = the last purchase event."""
    is_pu = ev.type == EV_PURCHASE
    o_sess = np.flatnonzero(s.n_purchase > 0)
    n_s = len(s)
    gross = np.bincount(ev.session[is_pu], weights=(ev.price * ev.quantity)[is_pu], minlength=n_s)
    gross = np.round(gross[o_sess], 2)
    items = np.bincount(ev.session[is_pu], weights=ev.quantity[is_pu], minlength=n_s)[o_sess].astype(np.int32)
    op = s.persona[o_sess]
    n_o = len(o_sess)
    has_disc = rng.random(n_o) < P_DISCOUNT[op]
    share = DISCOUNT_RANGE[op, 0] + rng.random(n_o) * (DISCOUNT_RANGE[op, 1] - DISCOUNT_RANGE[op, 0])
    discount = np.round(np.where(has_disc, gross * share, 0.0), 2)
    amount = np.round(gross - discount, 2)
    status = rng.choice(len(ORDER_STATUSES), n_o, p=_STATUS_SHARES)
    return pa.table(
        {
            "order_id": padded_ids(f"o{ymd}", np.arange(n_o), 7),
            "user_id": pop.user_ids.take(pa.array(s.user[o_sess])),
            # Purchases sort last in their session: the last one closes the order.
            "order_ts": pa.array(ev.session_end_ts[o_sess], pa.timestamp("us", tz="UTC")),
            "amount": pa.array(amount, pa.float64()),
            "item_count": pa.array(items, pa.int32()),
            "discount_amount": pa.array(discount, pa.float64()),
            "status": pa.array(ORDER_STATUSES).take(pa.array(status)),
        },
        schema=tables.table("raw.orders").arrow_schema(),
    )

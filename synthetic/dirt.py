"""Dirt the cleaning stage must handle: junk rows, negative and 100x prices, and late arrival.

It draws from its own rng stream per day, so the clean data of ``synthetic/day.py`` is untouched by it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthetic.columns import padded_ids

JUNK_EVENT_TYPE = "app_open"  # outside the event-type contract: cleaning quarantines it
LATE_FAR_DAYS = 4
_JUNK_TYPE_RATE = 0.0005  # extra rows with JUNK_EVENT_TYPE, per event
_NEGATIVE_PRICE_RATE = 0.0005  # extra copies of views with a negative price, per event
_PRICE_OUTLIER_RATE = 0.0003  # share of views whose price is 100x
_PRICE_OUTLIER_FACTOR = 100.0
_LATE_NEXT_DAY = 0.01  # share of a day's events arriving in the next day's partition
_LATE_FAR = 0.0005  # share arriving LATE_FAR_DAYS later (beyond the default lookback of 2 days)


def add_dirt(events: pa.Table, ymd: str, rng: np.random.Generator) -> dict[int, pa.Table]:
    """Dirty one day's events; returns {arrival delay in days: rows arriving then} (0 = on time)."""
    views = np.flatnonzero(events.column("event_type").to_numpy(zero_copy_only=False) == "view")
    events = _with_price_outliers(events, views, rng)
    events = pa.concat_tables([events, _junk_rows(events, views, ymd, rng)])
    return _by_arrival_delay(events, rng)


def _with_price_outliers(events: pa.Table, views: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """A few views (and their duplicates) get a 100x price, a feed error cleaning winsorises."""
    price = events.column("price").to_numpy().copy()
    outliers = views[rng.random(len(views)) < _PRICE_OUTLIER_RATE]
    event_id = events.column("event_id").to_numpy(zero_copy_only=False)
    outliers = np.isin(event_id, event_id[outliers])  # duplicates of an outlier stay exact copies
    price[outliers] = np.round(price[outliers] * _PRICE_OUTLIER_FACTOR, 2)
    return events.set_column(events.schema.get_field_index("price"), "price", pa.array(price, pa.float64()))


def _junk_rows(events: pa.Table, views: np.ndarray, ymd: str, rng: np.random.Generator) -> pa.Table:
    """Extra rows cleaning quarantines: copies with JUNK_EVENT_TYPE, and copies of views with a negative
    price. They have their own ids, so dropping them gives back the clean day exactly."""
    n = events.num_rows
    picked = rng.choice(n, rng.binomial(n, _JUNK_TYPE_RATE)) if n else []
    junk_type = events.take(pa.array(picked, pa.int64()))
    junk_type = junk_type.set_column(junk_type.schema.get_field_index("event_type"), "event_type",
                                     pa.array([JUNK_EVENT_TYPE] * junk_type.num_rows, pa.string()))
    k = rng.binomial(len(views), _NEGATIVE_PRICE_RATE * n / max(len(views), 1)) if len(views) else 0
    negative = events.take(pa.array(rng.choice(views, k) if k else [], pa.int64()))
    negative = negative.set_column(negative.schema.get_field_index("price"), "price",
                                   pc.negate(pc.add(negative.column("price"), 1.0)))
    junk = pa.concat_tables([junk_type, negative])
    return junk.set_column(0, "event_id", padded_ids(f"e{ymd}x", np.arange(junk.num_rows), 7))


def _by_arrival_delay(events: pa.Table, rng: np.random.Generator) -> dict[int, pa.Table]:
    """~1% of the rows arrive a day late, ~0.05% LATE_FAR_DAYS late, the rest on time."""
    u = rng.random(events.num_rows)
    late_next = u < _LATE_NEXT_DAY
    late_far = (u >= _LATE_NEXT_DAY) & (u < _LATE_NEXT_DAY + _LATE_FAR)
    return {
        0: events.filter(pa.array(~(late_next | late_far))),
        1: events.filter(pa.array(late_next)),
        LATE_FAR_DAYS: events.filter(pa.array(late_far)),
    }

"""Column builders shared by the generator's tables: string ids and UTC day starts, without per-row Python."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

US_PER_DAY = 86_400_000_000


def padded_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded number, built in Arrow (no per-row Python)."""
    digits = pc.utf8_lpad(pa.array(numbers, pa.int64()).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def day_start_us(day: dt.date) -> int:
    """Microseconds since the epoch at 00:00 UTC of ``day``."""
    return (day - dt.date(1970, 1, 1)).days * US_PER_DAY

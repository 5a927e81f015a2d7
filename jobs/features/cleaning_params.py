"""Cleaning parameters (winsorisation caps, imputation medians) a run cleans with: stored, or fitted.

A run for ds uses the latest ``features.cleaning_params`` fitted on or before ds. When there is none, or
with ``--refit-params`` (the training DAG), they are fitted on the raw window ``[ds-89, ds]`` and stored
under ds.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from pyspark.sql import SparkSession

from core import tables, warehouse
from jobs.features import cleaning
from jobs.features.cleaning import CleaningParams
from jobs.features.planning import primary_input, read_raw, read_users_snapshot, window_dates

log = logging.getLogger(__name__)

PARAMS_TABLE = "features.cleaning_params"


def latest_params_ds(ds: str) -> str | None:
    """The fit date of the stored cleaning parameters a run for ds uses (the latest on or before ds)."""
    fitted = [p for p in warehouse.partitions(PARAMS_TABLE) if p <= ds]
    return fitted[-1] if fitted else None


def load_params(spark: SparkSession, ds: str, late_days: int, refit: bool = False) -> CleaningParams:
    """The stored cleaning parameters for ds; fitted (and stored under ds) when none exist or on refit."""
    fit_ds = latest_params_ds(ds)
    if fit_ds is not None and not refit:
        return CleaningParams.from_rows(fit_ds, warehouse.read_arrow(PARAMS_TABLE, fit_ds).to_pylist())
    primary = primary_input()
    window = sorted(set(window_dates(ds)) & set(warehouse.partitions(primary)))
    if not window:
        raise warehouse.TableNotFound(f"{primary} has no partition in the 90 days up to ds={ds} to fit "
                                    "cleaning parameters on")
    raw = {"raw.events": read_raw(spark, "raw.events", window), "raw.users": read_users_snapshot(spark, ds)}
    rows = cleaning.fit_params(raw, late_days, window_start=window[0])
    schema = tables.table(PARAMS_TABLE).arrow_schema()
    warehouse.write_arrow(PARAMS_TABLE, pa.Table.from_pylist(rows, schema=schema), ds)
    for r in rows:
        log.info("cleaning params fit ds=%s (raw %s .. %s): %s.%s %s q=%s -> %s", ds, window[0], ds,
                 r["table_name"], r["column_name"], r["param"], r["quantile"], r["value"])
    return CleaningParams.from_rows(ds, rows)

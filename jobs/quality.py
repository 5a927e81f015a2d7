"""Great Expectations gates: validate one table partition against its suite in ``expectations/``.

Suites are versioned JSON files (GX's own suite format), one per table, loaded fresh on every run so
the repository is the source of truth. Results land in Data Docs under ``<SEGMENTS_HOME>/gx`` and as a
row of ``quality.validation_results``. A failed gate raises ``ValidationFailed`` whose message names
the table, ds, each failed expectation with its column, and the unexpected count.

Two engines run the same suites: ``spark`` (big tables: raw events) and ``pandas`` (tables with one row
per user: no JVM to start, which saves ~30 s per gate in a DAG run).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

from core import feature_catalog, tables, warehouse
from core import settings as settings_mod
from core.errors import PlatformError
from core.settings import REPO_ROOT

log = logging.getLogger(__name__)

SUITES_DIR = REPO_ROOT / "expectations"
Engine = Literal["spark", "pandas"]
ENGINES: tuple[Engine, ...] = ("spark", "pandas")
MISSING, EMPTY = "partition_exists", "partition_has_rows"  # the checks before a suite can run


class ValidationFailed(PlatformError):
    """Bad input: the partition did not pass its expectation suite."""

    hint = "nothing downstream was written; fix the input partition and rerun this date (Data Docs show details)"


@dataclass
class FailedExpectation:
    expectation: str
    column: str | None
    unexpected_count: int | None
    element_count: int | None

    def describe(self) -> str:
        col = f"(column={self.column})" if self.column else ""
        if self.unexpected_count is None:
            return f"{self.expectation}{col}"
        return f"{self.expectation}{col}: {self.unexpected_count} unexpected of {self.element_count} rows"


@dataclass
class ValidationOutcome:
    table: str
    ds: str
    rows: int
    evaluated: int
    failures: list[FailedExpectation] = field(default_factory=list)
    data_docs: str | None = None

    @property
    def success(self) -> bool:
        return not self.failures

    def message(self) -> str:
        if self.success:
            return f"{self.table} ds={self.ds}: all {self.evaluated} expectations passed on {self.rows} rows"
        if self.evaluated == 0:  # nothing to run the suite on: say which of the two it is
            return f"{self.table} ds={self.ds}: " + (
                "no partition: the data has not arrived (or the upstream stage has not run)"
                if self.failures[0].expectation == MISSING else "the partition exists but holds no rows")
        details = "; ".join(f.describe() for f in self.failures)
        docs = f" (Data Docs: {self.data_docs})" if self.data_docs else ""
        return (
            f"{self.table} ds={self.ds}: {len(self.failures)} of {self.evaluated} expectations failed: "
            f"{details}{docs}"
        )


def suite_path(table_name: str) -> Path:
    return SUITES_DIR / f"{table_name}.json"


def load_suite_spec(table_name: str) -> dict:
    path = suite_path(table_name)
    if not path.exists():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.json"))
        raise KeyError(f"no expectation suite for {table_name}; suites exist for: {', '.join(known)}")
    return json.loads(path.read_text())


def applicable(spec: dict, raw_tables: tuple[str, ...]) -> dict:
    """The suite without its expectations on features the shop cannot have (absent families are null)."""
    gone = {f.name for f in feature_catalog.absent(raw_tables)}
    return {**spec, "expectations": [e for e in spec["expectations"] if e["kwargs"].get("column") not in gone]}


def raw_tables_to_validate() -> list[str]:
    """The shop's raw tables that have a suite: what ``segments validate --table raw`` gates."""
    return [t for t in settings_mod.load().raw_tables if suite_path(t).exists()]


def default_engine(table_name: str) -> Engine:
    """The engine a suite declares in its meta (``spark`` unless it says otherwise)."""
    engine = load_suite_spec(table_name).get("meta", {}).get("engine", "spark")
    if engine not in ENGINES:
        raise ValueError(f"suite {table_name}: unknown engine {engine!r}; use one of {ENGINES}")
    return engine


def _context():
    import great_expectations as gx

    s = settings_mod.load()
    s.gx_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    return gx.get_context(mode="file", project_root_dir=str(s.gx_dir))


def validate_dataframe(
    df: "DataFrame | pd.DataFrame", table_name: str, ds: str, engine: Engine
) -> ValidationOutcome:
    """Run the table's suite on ``df`` (one partition, Spark or pandas) and build Data Docs."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    spec = applicable(load_suite_spec(table_name), settings_mod.load().raw_tables)
    context = _context()
    if engine == "spark":
        source = context.data_sources.add_or_update_spark(name="warehouse_spark")
    else:
        source = context.data_sources.add_or_update_pandas(name="warehouse_pandas")
    asset = next((a for a in source.assets if a.name == table_name), None) or source.add_dataframe_asset(
        name=table_name
    )
    batch = next((b for b in asset.batch_definitions if b.name == "partition"), None)
    batch = batch or asset.add_batch_definition_whole_dataframe("partition")
    suite = context.suites.add_or_update(gx.ExpectationSuite(**spec))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{table_name}.{engine}", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{table_name}.{engine}",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "SUMMARY"},
        )
    )
    if engine == "spark":
        df = df.cache()  # every expectation is a Spark job over the same partition
    rows = len(df) if engine == "pandas" else df.count()
    result = checkpoint.run(batch_parameters={"dataframe": df})
    if engine == "spark":
        df.unpersist()
    validation = next(iter(result.run_results.values()))
    failures = []
    for r in validation.results:
        if r.success:
            continue
        cfg = r.expectation_config
        res = r.result or {}
        failures.append(
            FailedExpectation(
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                unexpected_count=res.get("unexpected_count"),
                element_count=res.get("element_count"),
            )
        )
    docs = context.get_docs_sites_urls()
    return ValidationOutcome(
        table=table_name,
        ds=ds,
        rows=rows,
        evaluated=len(validation.results),
        failures=failures,
        data_docs=docs[0]["site_url"] if docs else None,
    )


def validate(table_name: str, ds: str, engine: Engine = "spark", spark: "SparkSession | None" = None
             ) -> ValidationOutcome:
    """Gate one partition: record the outcome, raise ``ValidationFailed`` if it did not pass."""
    if engine == "spark":
        if spark is None:
            raise ValueError("the spark engine needs a SparkSession")
        df = warehouse.read_spark(spark, table_name, ds=ds)
        empty = df.isEmpty()
    else:
        try:
            df = warehouse.read_pandas(table_name, ds)
        except warehouse.TableNotFound:
            df = None
        empty = df is None or df.empty
    if empty:
        missing = ds not in warehouse.partitions(table_name)
        outcome = ValidationOutcome(table_name, ds, rows=0, evaluated=0,
                                    failures=[FailedExpectation(MISSING if missing else EMPTY, None, None, None)])
    else:
        outcome = validate_dataframe(df, table_name, ds, engine)
    record(outcome)
    if not outcome.success:
        raise ValidationFailed(outcome.message())
    log.info(outcome.message())
    return outcome


def record(outcome: ValidationOutcome) -> None:
    """Upsert this table's row in quality.validation_results for ds (other tables' rows are kept)."""
    name = "quality.validation_results"
    try:
        existing = warehouse.read_arrow(name, outcome.ds).to_pylist()
    except warehouse.TableNotFound:
        existing = []
    rows = [r for r in existing if r["table_name"] != outcome.table]
    rows.append(
        {
            "table_name": outcome.table,
            "suite": outcome.table,
            "success": outcome.success,
            "expectations": outcome.evaluated,
            "failed": len(outcome.failures),
            "rows": outcome.rows,
            "summary": outcome.message(),
        }
    )
    warehouse.write_arrow(name, pa.Table.from_pylist(rows, schema=tables.table(name).arrow_schema()), outcome.ds)

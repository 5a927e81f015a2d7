"""Gates: validate one table partition before anything downstream is built from it.

Every table with a suite in ``expectations/`` (GX's own suite format, loaded fresh on every run so the
repository is the source of truth) is checked against it. Raw tables get more, in this order, each stopping
the gate before the next (``jobs.raw_checks``): the partition exists and holds rows; its files' schema
(readable, required columns, declared types, no lost column); the suite; the share of rows cleaning would
reject; rows, users, scale and mix against recent days. A failed gate raises ``ValidationFailed``, whose
one-line message names the table, ds, each failed check with its column and the counts. Results land in
Data Docs under ``<SEGMENTS_HOME>/gx`` and as a row of ``quality.validation_results``.

The GX store keeps each suite, validation definition and checkpoint between runs and saves them again only
when they would change (the suite carries a fingerprint of its spec in its meta): saving costs seconds for
a big suite, as GX compares every expectation with every stored one.

Two engines run the same suites: ``spark`` (big tables: raw events) and ``pandas`` (tables with one row
per user: no JVM to start, which saves ~30 s per gate in a DAG run). Raw gates need Spark either way: the
cleaning rules they bound are Spark expressions.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

from core import feature_catalog, tables, warehouse
from core import settings as settings_mod
from core.errors import PlatformError
from core.settings import REPO_ROOT
from jobs import raw_checks

log = logging.getLogger(__name__)

SUITES_DIR = REPO_ROOT / "expectations"
Engine = Literal["spark", "pandas"]
ENGINES: tuple[Engine, ...] = ("spark", "pandas")
MISSING, EMPTY = "partition_exists", "partition_has_rows"  # the checks before a suite can run
FINGERPRINT = "segments_fingerprint"  # our key in a stored suite's meta (GX adds keys of its own there)


class ValidationFailed(PlatformError):
    """Bad input: the partition did not pass its expectation suite."""

    hint = "nothing downstream was written; fix the input partition and rerun this date (Data Docs show details)"
    exit_code = 3  # a gate: not retried


@dataclass
class FailedExpectation:
    expectation: str
    column: str | None
    unexpected_count: int | None
    element_count: int | None
    detail: str | None = None  # what a check beyond the suite found (jobs.raw_checks)

    def describe(self) -> str:
        col = f"(column={self.column})" if self.column else ""
        if self.detail:
            return f"{self.expectation}{col}: {self.detail}"
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
    partition: str | None = None  # the partition checked, when not ds (a snapshot table's latest before ds)

    @property
    def success(self) -> bool:
        return not self.failures

    def message(self) -> str:
        where = f"{self.table} ds={self.ds}" + (
            f" (snapshot ds={self.partition})" if self.partition not in (None, self.ds) else "")
        if self.success:
            return f"{where}: all {self.evaluated} checks passed on {self.rows} rows"
        if self.evaluated == 0:  # nothing to run the suite on: say which of the two it is
            return f"{where}: " + (
                "no partition: the data has not arrived (or the upstream stage has not run)"
                if self.failures[0].expectation == MISSING else "the partition exists but holds no rows")
        details = "; ".join(f.describe() for f in self.failures)
        suite_failed = any(f.detail is None for f in self.failures)  # Data Docs show the suite's results only
        docs = f" (Data Docs: {self.data_docs})" if self.data_docs and suite_failed else ""
        return (
            f"{where}: {len(self.failures)} of {self.evaluated} checks failed: "
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
    from great_expectations.data_context.types.base import ProgressBarsConfig

    s = settings_mod.load()
    s.gx_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    context = gx.get_context(mode="file", project_root_dir=str(s.gx_dir))
    # A bar per validation would clutter job and task logs; each gate prints its own line.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@contextlib.contextmanager
def _store_lock() -> Iterator[None]:
    """One validation at a time per GX store: GX keeps suites, validation definitions and checkpoints in one
    store on disk, and a validation whose objects another one saved meanwhile fails with
    ``CheckpointRelatedResourcesFreshnessError`` (two dates of a backfill, a rerun beside the daily run)."""
    gx_dir = settings_mod.load().gx_dir
    gx_dir.mkdir(parents=True, exist_ok=True)
    with open(gx_dir / ".store.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits; released when the file closes (or the process dies)
        yield


def spec_fingerprint(spec: dict) -> str:
    """sha256 of the suite spec's canonical JSON: what a stored suite must carry in its meta to be reused."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _batch_definition(context, table_name: str, engine: Engine):
    """The table's whole-dataframe batch definition, added to the store only when missing."""
    name = f"warehouse_{engine}"
    # Not add_or_update: it replaces the data source with an empty one, which dropped the other tables'
    # assets and gave this one new ids on every run.
    sources = context.data_sources
    try:
        source = sources.get(name)
    except KeyError:
        source = sources.add_spark(name) if engine == "spark" else sources.add_pandas(name)
    # get_asset, not a scan of source.assets: it points the asset back at this source, which knows the context
    # (without it, saving a validation definition stores a source the run then cannot use).
    try:
        asset = source.get_asset(table_name)
    except LookupError:
        asset = source.add_dataframe_asset(name=table_name)
    try:
        return asset.get_batch_definition("partition")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("partition")


def _suite(context, spec: dict):
    """The stored suite of ``spec``, saved first unless the stored one has the spec's fingerprint."""
    import great_expectations as gx
    from great_expectations.exceptions import DataContextError

    fingerprint = spec_fingerprint(spec)
    try:
        stored = context.suites.get(spec["name"])
    except DataContextError:  # a new store
        stored = None
    if stored is not None and stored.meta.get(FINGERPRINT) == fingerprint:
        return stored
    meta = {**spec.get("meta", {}), FINGERPRINT: fingerprint}
    return context.suites.add_or_update(gx.ExpectationSuite(**{**spec, "meta": meta}))


def _runs(checkpoint) -> tuple:
    """What a checkpoint does: the validation definitions (suite and batch definition) and actions it runs,
    with which result format."""
    # str(): a batch definition's id is a UUID when just added, a str when read from the store
    definitions = [(d.name, d.suite.name, str(d.suite.id), str(d.data.id))
                   for d in checkpoint.validation_definitions]
    return checkpoint.name, definitions, [a.dict() for a in checkpoint.actions], checkpoint.result_format


def _checkpoint(context, name: str, batch, suite):
    """The stored checkpoint validating ``batch`` with ``suite`` and updating Data Docs, saved first (with
    its validation definition) unless the stored one does just that."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.exceptions import DataContextError

    wanted = gx.Checkpoint(
        name=name,
        validation_definitions=[gx.ValidationDefinition(name=name, data=batch, suite=suite)],
        actions=[UpdateDataDocsAction(name="data_docs")],
        result_format={"result_format": "SUMMARY"},
    )
    try:
        stored = context.checkpoints.get(name)
    except (DataContextError, ValueError):  # none yet, or what it names is gone (a pydantic ValueError)
        stored = None
    if stored is not None and _runs(stored) == _runs(wanted):
        return stored
    # The definition first: a stored checkpoint naming a definition that is gone cannot even be read.
    context.validation_definitions.add_or_update(wanted.validation_definitions[0])
    return context.checkpoints.add_or_update(wanted)


def validate_dataframe(
    df: "DataFrame | pd.DataFrame", table_name: str, ds: str, engine: Engine
) -> ValidationOutcome:
    """Run the table's suite on ``df`` (one partition, Spark or pandas) and build Data Docs."""
    spec = applicable(load_suite_spec(table_name), settings_mod.load().raw_tables)
    rows = len(df) if engine == "pandas" else df.count()
    with _store_lock():
        context = _context()
        batch = _batch_definition(context, table_name, engine)
        # The suite first: the stored checkpoint, read next, then holds the suite as saved.
        checkpoint = _checkpoint(context, f"{table_name}.{engine}", batch, _suite(context, spec))
        result = checkpoint.run(batch_parameters={"dataframe": df})
        docs = context.get_docs_sites_urls()
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
    return ValidationOutcome(
        table=table_name,
        ds=ds,
        rows=rows,
        evaluated=len(validation.results),
        failures=failures,
        data_docs=docs[0]["site_url"] if docs else None,
    )


def needs_spark(table_name: str, engine: Engine) -> bool:
    """Whether validating the table needs a SparkSession: the spark engine, and every raw gate (the
    cleaning rules it bounds are Spark expressions)."""
    return engine == "spark" or tables.table(table_name).layer == "raw"


def partition_to_check(table_name: str, ds: str) -> str:
    """The partition a run of ds reads: ds itself, or for a snapshot table (raw.users) its latest on or before
    ds (a shop may load attributes once a week); ds when there is none."""
    if not tables.table(table_name).snapshot:
        return ds
    return next((p for p in reversed(warehouse.partitions(table_name)) if p <= ds), ds)


def _problems(problems: list[raw_checks.Problem]) -> list[FailedExpectation]:
    return [FailedExpectation(p.check, p.column, None, None, p.detail) for p in problems]


def _check(table_name: str, ds: str, engine: Engine, spark: "SparkSession | None") -> ValidationOutcome:
    """Run the gate's checks in order, stopping at the first that fails (see the module docstring)."""
    part = partition_to_check(table_name, ds)
    raw = tables.table(table_name).layer == "raw"
    if raw and any(Path(warehouse.partition_path(table_name, part)).glob("*.parquet")):
        # First: it names a file that cannot be read, which counting the rows from the footers would not.
        previous = raw_checks.recent_partitions(table_name, part, 1)
        problems = raw_checks.schema_problems(table_name, part, previous[0] if previous else None)
        if problems:
            return ValidationOutcome(table_name, ds, 0, 1, _problems(problems), partition=part)
    rows = warehouse.partition_rows(table_name, part)
    if not rows:  # nothing to run the suite on: say which of the two it is
        return ValidationOutcome(table_name, ds, rows=0, evaluated=0, partition=part,
                                 failures=[FailedExpectation(MISSING if rows is None else EMPTY, None, None, None)])
    with_spark = needs_spark(table_name, engine)
    if with_spark and spark is None:
        raise ValueError(f"validating {table_name} needs a SparkSession (engine {engine})")
    frame = warehouse.read_spark(spark, table_name, ds=part).cache() if with_spark else None
    try:
        # Every expectation, and the cleaning check, is a Spark job over the same (cached) partition.
        df = frame if engine == "spark" else warehouse.read_pandas(table_name, part)
        outcome = validate_dataframe(df, table_name, ds, engine)
        outcome.partition = part
        if raw:
            outcome.evaluated += 1  # the schema check
        if not raw or not outcome.success:
            return outcome
        s = settings_mod.load()
        for check in (lambda: raw_checks.rejection_problems(frame, outcome.rows, table_name, s.late_data_days,
                                                            s.gate_max_rejected),
                      lambda: raw_checks.recent_problems(table_name, part, s)):
            outcome.evaluated += 1
            outcome.failures = _problems(check())
            if outcome.failures:
                break
        return outcome
    finally:
        if frame is not None:
            frame.unpersist()


def validate(table_name: str, ds: str, engine: Engine = "spark", spark: "SparkSession | None" = None
             ) -> ValidationOutcome:
    """Gate one partition: record the outcome, raise ``ValidationFailed`` if it did not pass."""
    outcome = _check(table_name, ds, engine, spark)
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

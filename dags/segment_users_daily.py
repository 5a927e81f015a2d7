"""Daily segmentation of the shop's users, keyed on the run's logical date ``ds``.

**Waits** (deferred, no worker slot held): ``wait_for_raw_<table>`` for each of the shop's raw tables that are
partitioned by arrival day (``raw.events``, ``raw.orders``; ``raw.users`` is an optional snapshot and is not
waited for), until ``<warehouse>/raw/<table>/ds=<ds>/_SUCCESS`` exists (``segments ingest`` and ``segments
seed`` write it last). After ``SEGMENTS_WAIT_TIMEOUT_HOURS`` (default 12) the wait fails, naming the table and
the ds, and is not retried: land the data, then clear the run.

**segment_users**: the whole daily chain of ``app/chain.py`` in one Spark session: __CHAIN__. It runs
``segments run --ds <ds> --model <params.model>``, as a client of the long-lived Spark driver of the connection
``spark_connect_default`` when it exists (the stack's Spark Connect server: no JVM starts for the task), else in
one spark-submit through ``spark_default``; each stage prints one line (``[features] ...``,
``[score] ...``) to this task's log (at Airflow's logging level INFO). A failed gate stops the chain:
nothing downstream is written, the BI tables keep the previously published version, and the task fails
without retries (exit code 3); other failures are retried once. The task runs in the pool
``segments_writer`` (1 slot), as do training's features.

**Rerun one stage by hand**, with the same ``SEGMENTS_HOME`` (the chain's later stages then follow it):
__STAGES__. The whole chain for a date: ``.venv/bin/segments run --ds <ds>``.

**Params**: ``model`` = ``recorded`` (default: the model version that first labelled the date, or the champion
for a new date; a rerun labels as before) or ``champion`` (relabel with today's champion), e.g.
``airflow dags trigger segment_users_daily -l 2026-06-30 -c '{"model": "champion"}'`` or
``bin/backfill ... --model champion``.

**Past dates**: no catch-up by default (``SEGMENTS_CATCHUP=true`` turns it on): backfill them through the
scheduler with ``bin/backfill --from A --to B [--reprocess completed] [--model champion]`` (one date at a
time, oldest first; it reports what it created, reprocessed and skipped).
"""

from __future__ import annotations

from _common import (
    CATCHUP,
    DEFAULT_ARGS,
    DS,
    START_DATE,
    WAITED_TABLES,
    WRITER_POOL,
    RawPartitionSensor,
    chain_outlets,
    late_run_deadline,
    spark_stage,
)
from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from app.chain import DAILY_CHAIN, describe
from core.settings import MODEL_CHOICES


def _doc() -> str:
    stages = "; ".join(f"``{s.task_id}``: ``segments {' '.join(s.args('<ds>'))}``" for s in DAILY_CHAIN)
    return __doc__.replace("__CHAIN__", describe()).replace("__STAGES__", stages)


with DAG(
    dag_id="segment_users_daily",
    description="Wait for the day's raw data, then validate, featurise, score, profile, publish its segments",
    # Data interval [day, day + 1): the run for ds starts once that UTC day is complete.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=CATCHUP,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "model": Param(MODEL_CHOICES[0], type="string", enum=list(MODEL_CHOICES),
                       description="Which model labels the date: 'recorded' (the version that first labelled "
                       "it, or the champion for a new date) or 'champion' (the current champion)."),
    },
    deadline=late_run_deadline(),
    tags=["segments", "daily"],
    doc_md=_doc(),
) as dag:
    waits = [RawPartitionSensor(task_id=f"wait_for_{table.replace('.', '_')}", table=table)
             for table in WAITED_TABLES]
    segment_users = spark_stage("segment_users", "run", "--ds", DS, "--model", "{{ params.model }}",
                                outlets=chain_outlets(DAILY_CHAIN), pool=WRITER_POOL)
    waits >> segment_users

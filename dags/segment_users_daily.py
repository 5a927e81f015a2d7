"""Daily segmentation of the shop's users, keyed on the run's logical date.

The stages are the daily chain declared in ``app/chain.py`` (``segments run`` follows the same one):
validate raw -> build features -> validate features -> score with the champion -> validate segments
-> profiles -> publish to BI. A failed gate stops the run; nothing downstream is written, and the
BI tables keep the previously published version. Backfill with
``airflow backfill create --dag-id segment_users_daily --from-date A --to-date B``.
"""

from __future__ import annotations

from _common import DEFAULT_ARGS, START_DATE, stage_task
from airflow.sdk import DAG, CronDataIntervalTimetable, chain

from app.chain import DAILY_CHAIN

with DAG(
    dag_id="segment_users_daily",
    description="Validate, featurise, score, profile and publish user segments for one day",
    # Data interval [day, day + 1): the run for ds starts once that UTC day is complete.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["segments", "daily"],
    doc_md=__doc__,
) as dag:
    chain(*[stage_task(stage) for stage in DAILY_CHAIN])

"""Daily segmentation of the shop's users, keyed on the run's logical date.

validate raw -> build features -> validate features -> score with the champion -> validate segments
-> profiles -> publish to BI. A failed gate stops the run; nothing downstream is written, and the
BI tables keep the previously published version. Backfill with
``airflow backfill create --dag-id segment_users_daily --from-date A --to-date B``.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable

from _common import BI_SEGMENTS, DEFAULT_ARGS, START_DATE, cli_stage, spark_stage, table_asset

# Data interval [day, day + 1): the run for ds starts once that UTC day is complete.
DS = "{{ ds }}"

with DAG(
    dag_id="segment_users_daily",
    description="Validate, featurise, score, profile and publish user segments for one day",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["segments", "daily"],
    doc_md=__doc__,
) as dag:
    validate_raw = spark_stage("validate_raw", "validate", "--table", "raw.events", "--ds", DS)
    build_features = spark_stage("build_features", "features", "--ds", DS,
                                 outlets=[table_asset("features.user_features")])
    # Per-user tables are validated with GX's pandas engine (their suites say so): no JVM to start.
    validate_features = cli_stage("validate_features", "validate", "--table", "features.user_features",
                                  "--ds", DS)
    score = spark_stage("score", "score", "--ds", DS, outlets=[table_asset("segments.user_segments")])
    validate_segments = cli_stage("validate_segments", "validate", "--table", "segments.user_segments",
                                  "--ds", DS)
    profiles = spark_stage("profiles", "profiles", "--ds", DS,
                           outlets=[table_asset("segments.segment_profiles")])
    publish = cli_stage("publish", "publish", "--ds", DS, outlets=[BI_SEGMENTS])

    validate_raw >> build_features >> validate_features >> score >> validate_segments >> profiles >> publish

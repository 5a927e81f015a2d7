"""Weekly (and on-demand) training of the LSTM segmenter, as of the run's logical date ``ds``.

wait for the daily run of ds -> features as of ds -> validate -> train teacher + student, evaluate,
register in MLflow as challenger, promote to champion only if the gate (ml/gate.py) finds it not worse than
the champion on the same held-out users: macro-F1 against today's teacher labels and day-to-day stability.

**Never beside the daily run**: ``wait_for_daily_run`` waits (deferred) for the ``segment_users_daily`` run of
the same ds to succeed (it fails at once if that run failed, and after ``SEGMENTS_WAIT_TIMEOUT_HOURS``);
``build_features`` and ``validate_features`` run in the pool ``segments_writer`` (1 slot) with the daily
chain, so a refit never rewrites partitions a daily run is writing.

**Params** (defaults: the settings): ``epochs``, ``method``, ``seed``, the flags of ``segments train``, e.g.
``airflow dags trigger train_segmenter -l 2026-06-30 -c '{"epochs": 30, "method": "feature_kmeans"}'``
(the logical date is the as-of date: give it).
"""

from __future__ import annotations

from _common import (
    DEFAULT_ARGS,
    DS,
    SETTINGS,
    START_DATE,
    TRAIN_TIMEOUT,
    WRITER_POOL,
    DailyRunSensor,
    cli_stage,
    spark_stage,
)
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from core.settings import SEGMENT_METHODS

with DAG(
    dag_id="train_segmenter",
    description="Train, evaluate, register and (gated) promote the user segmenter",
    # Weekly, Sunday's data interval; manual triggers work at any time.
    schedule=CronDataIntervalTimetable("0 0 * * 0", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "epochs": Param(SETTINGS.train_epochs, type="integer", minimum=1,
                        description="Training epochs of each LSTM student (segments train --epochs; default "
                        "SEGMENTS_TRAIN_EPOCHS)."),
        "method": Param(SETTINGS.segment_method, type="string", enum=list(SEGMENT_METHODS),
                        description="Teacher method that labels the training users (segments train --method; "
                        "default SEGMENTS_SEGMENT_METHOD, or the shop's default)."),
        "seed": Param(SETTINGS.seed, type="integer", minimum=0,
                      description="Random seed of the teacher and the students (segments train --seed; "
                      "default SEGMENTS_SEED)."),
    },
    tags=["segments", "training"],
    doc_md=__doc__,
) as dag:
    wait_for_daily_run = DailyRunSensor(task_id="wait_for_daily_run")
    # Refit the cleaning caps/medians on the training window; daily scoring runs reuse them.
    build_features = spark_stage("build_features", "features", "--ds", DS, "--refit-params", pool=WRITER_POOL)
    validate_features = cli_stage("validate_features", "validate", "--table", "features.user_features",
                                  "--ds", DS, pool=WRITER_POOL)
    model = Asset(name="mlflow.user_segmenter", uri=f"mlflow://models/{SETTINGS.model_name}")
    train = cli_stage("train", "train", "--ds", DS, "--epochs", "{{ params.epochs }}",
                      "--method", "{{ params.method }}", "--seed", "{{ params.seed }}",
                      execution_timeout=TRAIN_TIMEOUT, outlets=[model])

    wait_for_daily_run >> build_features >> validate_features >> train

"""Weekly (and on-demand) training of the LSTM segmenter.

features as of ds -> validate -> train teacher + student, evaluate, register in MLflow as challenger,
promote to champion only if the gate (ml/gate.py) finds it not worse than the champion on the same
held-out users: macro-F1 against today's teacher labels and day-to-day stability.
Trigger by hand with ``airflow dags trigger train_segmenter`` (logical date = the as-of date).
"""

from __future__ import annotations

from _common import DEFAULT_ARGS, DS, SETTINGS, START_DATE, cli_stage, spark_stage
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable

with DAG(
    dag_id="train_segmenter",
    description="Train, evaluate, register and (gated) promote the user segmenter",
    # Weekly, Sunday's data interval; manual triggers work at any time.
    schedule=CronDataIntervalTimetable("0 0 * * 0", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["segments", "training"],
    doc_md=__doc__,
) as dag:
    # Refit the cleaning caps/medians on the training window; daily scoring runs reuse them.
    build_features = spark_stage("build_features", "features", "--ds", DS, "--refit-params")
    validate_features = cli_stage("validate_features", "validate", "--table", "features.user_features",
                                  "--ds", DS)
    train = cli_stage("train", "train", "--ds", DS,
                      outlets=[Asset(name="mlflow.user_segmenter", uri=f"mlflow://models/{SETTINGS.model_name}")])

    build_features >> validate_features >> train

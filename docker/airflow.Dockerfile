# Airflow image: api-server, scheduler (LocalExecutor), dag-processor, triggerer and the airflow-init service
# of compose.yaml (the `.venv-airflow` of make install). Spark stages are submitted, in client mode, to the
# Spark master of the `spark_default` connection; ML and publish stages run the job environment's CLI,
# installed beside Airflow at /opt/venv (the path of the job image, so Spark executors find the same Python).
FROM user-segments-jobs AS jobs
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 AIRFLOW_HOME=/data/stack/airflow \
    SEGMENTS_JOB_PYTHON=/opt/venv/bin/python SEGMENTS_HOME=/data PATH=/opt/airflow-venv/bin:$PATH
COPY --from=jobs /opt/venv /opt/venv
COPY --from=jobs /app /app
RUN pip install --no-cache-dir uv==0.13.9 && uv venv /opt/airflow-venv
COPY locks/airflow.txt /app/locks/airflow.txt
RUN uv pip sync --python /opt/airflow-venv/bin/python /app/locks/airflow.txt \
    && uv pip install --python /opt/airflow-venv/bin/python --no-deps /app && uv cache clean
COPY dags /app/dags
ENV AIRFLOW__CORE__DAGS_FOLDER=/app/dags AIRFLOW__CORE__LOAD_EXAMPLES=False
WORKDIR /data

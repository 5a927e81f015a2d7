# Job image: Spark driver/executors + TensorFlow + MLflow + GX + the project (the `.venv` of make install).
# Build from the repo root: docker build -f docker/jobs.Dockerfile -t user-segments-jobs .
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    PYSPARK_PYTHON=/opt/venv/bin/python SEGMENTS_JOB_PYTHON=/opt/venv/bin/python \
    SEGMENTS_HOME=/data TF_CPP_MIN_LOG_LEVEL=2
RUN pip install --no-cache-dir uv==0.13.9 && uv venv /opt/venv
WORKDIR /app
COPY locks/job.txt locks/job.txt
RUN uv pip sync --python /opt/venv/bin/python locks/job.txt && uv cache clean
COPY pyproject.toml README.md ./
COPY core core
COPY app app
COPY synthetic synthetic
COPY jobs jobs
COPY ml ml
COPY expectations expectations
RUN uv pip install --python /opt/venv/bin/python --no-deps .
ENTRYPOINT ["segments"]

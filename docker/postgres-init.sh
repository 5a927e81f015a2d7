#!/bin/sh
# The stack's databases, created when missing (the compose service postgres-init runs it on every `up`; the
# local stack, app/stack.py, creates the same ones): <prefix>_airflow, <prefix>_mlflow, <prefix>_bi.
# Connection from libpq's variables: PGHOST, PGUSER, PGPASSWORD. Nothing is ever dropped here.
set -eu
prefix="${SEGMENTS_STACK_DB_PREFIX:-segments}"
for db in airflow mlflow bi; do
  name="${prefix}_${db}"
  if [ -z "$(psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '${name}'")" ]; then
    psql -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"${name}\""
    echo "created database ${name}"
  fi
done

"""DAG tests run in the Airflow environment (.venv-airflow)."""

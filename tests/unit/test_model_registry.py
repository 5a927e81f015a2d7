"""core.model_registry: a model's input columns against the feature table's."""

from __future__ import annotations

from core.model_registry import schema_diff


def test_schema_diff_names_missing_and_extra_columns():
    # The model needs a, b (and may take user_id); the table has a, c and the partition column ds.
    diff = schema_diff(["a", "b"], ["user_id"], ["user_id", "a", "c", "ds"])
    assert diff.missing == ("b",) and diff.extra == ("c",) and not diff.compatible
    assert diff.describe() == "1 missing from the table: b; 1 extra in the table (ignored by the model): c"
    # Extra columns alone do not stop a model (new features are added to the table before a retrain).
    assert schema_diff(["a"], [], ["a", "new_feature"]).compatible


def _wrapped_by_mlflow(error: Exception) -> Exception:
    """What MLflow raises after its retries: an MlflowException whose context is the requests error."""
    from mlflow.exceptions import MlflowException

    try:
        try:
            raise error
        except Exception as exc:
            raise MlflowException(f"API request to ... failed with exception {exc}")  # noqa: B904 - as MLflow
    except MlflowException as wrapped:
        return wrapped


def test_an_unreachable_server_becomes_one_line_naming_it(platform_home, monkeypatch):
    import requests

    from core.model_registry import RegistryUnreachable, registry_unreachable

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    request = requests.Request("GET", "http://mlflow:5000/api/2.0/mlflow/experiments/get-by-name").prepare()
    refused = requests.ConnectionError(
        "HTTPConnectionPool(host='mlflow', port=5000): Max retries exceeded with url: /api/2.0/... (Caused by "
        "NewConnectionError('<HTTPConnection object>: Failed to establish a new connection: [Errno 111] "
        "Connection refused'))", request=request)
    error = registry_unreachable(_wrapped_by_mlflow(refused))
    assert isinstance(error, RegistryUnreachable)
    assert str(error) == "MLflow tracking server http://mlflow:5000 is unreachable (connection refused, after 2 retries)"
    timeout = registry_unreachable(_wrapped_by_mlflow(requests.ConnectTimeout("timed out", request=request)))
    assert str(timeout) == "MLflow tracking server http://mlflow:5000 is unreachable (no answer within 20 s, " \
        "after 2 retries)"
    # An artifact server elsewhere is named as itself; anything else is not an unreachable server.
    artifacts = requests.Request("PUT", "http://store:9000/artifacts/model.keras").prepare()
    assert str(registry_unreachable(requests.ConnectionError("[Errno -2] Name or service not known",
                                                             request=artifacts))).startswith(
        "MLflow server http://store:9000 is unreachable (name or service not known")
    assert registry_unreachable(_wrapped_by_mlflow(ValueError("bad model"))) is None


def test_fast_http_defaults_leave_what_the_user_set(platform_home, monkeypatch):
    import os

    from core.model_registry import HTTP_DEFAULTS, mlflow_client

    for name in HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    mlflow_client()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]


def test_only_not_found_errors_mean_no_such_version():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    from core.model_registry import is_not_found

    assert is_not_found(MlflowException("Registered model alias champion not found.", INVALID_PARAMETER_VALUE))
    assert not is_not_found(MlflowException("API request to http://mlflow:5000 failed"))  # INTERNAL_ERROR

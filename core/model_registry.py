"""MLflow wiring shared by training (ml/) and scoring (jobs/): tracking/registry URIs, experiment, aliases.

Everything comes from ``core.settings`` so that ``SEGMENTS_HOME`` alone selects a platform. MLflow is
imported inside the functions: the Airflow environment and the CLI import this module cheaply.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable
from urllib.parse import urlparse

from core import settings as settings_mod
from core.errors import PlatformError

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

EXPERIMENT_NAME = "user_segmentation"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"


def _artifact_location(root: str) -> str:
    """An absolute URI for the artifact root (a bare relative path would make MLflow write ./mlruns)."""
    if urlparse(root).scheme and not Path(root).drive:  # already a URI (file://, s3://, ...)
        return root
    path = Path(root).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


# MLflow's HTTP defaults suit a rate-limited hosted server: 7 retries with exponential backoff and a 120 s
# timeout, so an unreachable server is reported after about 4.5 minutes. A platform job should say so in
# seconds: 3 attempts ~2 s apart (connection refused: ~3 s in all; no answer at all: ~1 minute). Values
# the user set win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


class RegistryUnreachable(PlatformError):
    """The MLflow tracking server (or the artifact server behind it) did not answer."""

    hint = ("start the MLflow server or point MLFLOW_TRACKING_URI at it (`python -m core.settings` prints "
            "the effective value); MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT set how "
            "long to try")


def registry_unreachable(exc: BaseException) -> RegistryUnreachable | None:
    """``RegistryUnreachable`` naming the server and why, when ``exc`` (an ``MlflowException`` or anything
    else MLflow raised) was caused by a server that could not be reached; otherwise None.

    MLflow wraps the ``requests`` error, after its retries, in an ``MlflowException`` whose message is a
    page of URL and pool details: the cause is found in the exception chain instead.
    """
    import requests

    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:  # (a chain can loop back on itself)
        chain.append(link)
        link = link.__cause__ or link.__context__
    cause = next((e for e in chain if isinstance(e, (requests.ConnectionError, requests.Timeout))), None)
    if cause is None:
        return None
    tracking = urlparse(settings_mod.load().mlflow_tracking_uri)
    url = urlparse(getattr(getattr(cause, "request", None), "url", None) or tracking.geturl())
    server = f"{url.scheme}://{url.netloc}"
    what = "tracking server" if (url.scheme, url.netloc) == (tracking.scheme, tracking.netloc) else "server"
    if isinstance(cause, requests.Timeout):
        why = f"no answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '?')} s"
    else:  # "[Errno 111] Connection refused", "[Errno -2] Name or service not known", ...
        errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(cause))
        why = errno.group(1).strip().lower() if errno else type(cause).__name__
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "?")
    return RegistryUnreachable(f"MLflow {what} {server} is unreachable ({why}, after {retries} retries)")


NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def is_not_found(exc: BaseException) -> bool:
    """Whether an ``MlflowException`` says that a model, version or alias does not exist (and not that
    the registry could not be asked)."""
    return getattr(exc, "error_code", None) in NOT_FOUND_CODES


def _set_uris() -> settings_mod.Settings:
    import mlflow

    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    s = settings_mod.load()
    uri = s.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        # SQLite will not create the directory of its database file.
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return s


def mlflow_client() -> "MlflowClient":
    """A client on the configured tracking/registry server (no experiment side effects)."""
    from mlflow.tracking import MlflowClient

    s = _set_uris()
    return MlflowClient(tracking_uri=s.mlflow_tracking_uri, registry_uri=s.mlflow_tracking_uri)


def configure_mlflow(experiment_name: str = EXPERIMENT_NAME) -> str:
    """Point MLflow at the platform's server, ensure the experiment exists, make it active.

    Training logs to ``EXPERIMENT_NAME``, with artifacts at the artifact root; another experiment (the
    future-behaviour evaluation) gets a folder of its own under that root. Returns the experiment id.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    # Download progress bars would clutter job logs (training and scoring fetch artifacts).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    s = _set_uris()
    client = mlflow.tracking.MlflowClient(tracking_uri=s.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        root = s.mlflow_artifact_root.rstrip("/")
        location = root if experiment_name == EXPERIMENT_NAME else f"{root}/{experiment_name}"
        try:
            experiment_id = client.create_experiment(experiment_name,
                                                     artifact_location=_artifact_location(location))
        except MlflowException:
            # Another process created it between our lookup and create: use theirs.
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def model_version_by_alias(alias: str, client: "MlflowClient | None" = None) -> "ModelVersion | None":
    """The version of settings.model_name holding ``alias``, or None (no alias or no model yet)."""
    from mlflow.exceptions import MlflowException

    client = client or mlflow_client()
    try:
        return client.get_model_version_by_alias(settings_mod.load().model_name, alias)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def champion_version(client: "MlflowClient | None" = None) -> "ModelVersion | None":
    """The registered version serving as champion, or None before the first promotion.

    Scoring should load ``models:/<model_name>/<version.version>`` (pinned), not the alias URI, so a
    promotion during a scoring run cannot mix two models in one output partition.
    """
    return model_version_by_alias(CHAMPION, client)


def model_uri(version: str | int) -> str:
    return f"models:/{settings_mod.load().model_name}/{version}"


# --- the model's input contract vs the feature table -----------------------------------------------
class SchemaMismatch(PlatformError):
    """A registered model needs feature-table columns that features.user_features does not have."""

    hint = ("the feature contract changed since the model was trained: retrain on the new table "
            "(segments train --ds <ds>), or roll back the feature job")


@dataclass(frozen=True)
class SchemaDiff:
    missing: tuple[str, ...]  # required by the model, absent from the table: the model cannot score
    extra: tuple[str, ...]  # in the table, unknown to the model: ignored at scoring (informational)

    @property
    def compatible(self) -> bool:
        return not self.missing

    def describe(self, limit: int = 12) -> str:
        def names(cols: tuple[str, ...]) -> str:
            shown = ", ".join(cols[:limit])
            return shown + (f" (+{len(cols) - limit} more)" if len(cols) > limit else "")

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing from the table: {names(self.missing)}")
        if self.extra:
            parts.append(f"{len(self.extra)} extra in the table (ignored by the model): {names(self.extra)}")
        return "; ".join(parts) or "columns match"


def model_input_columns(model_uri: str) -> tuple[list[str], list[str]] | None:
    """(required, optional) input columns of a logged model's signature; None if it has no signature.

    Reads only the MLmodel file (no TensorFlow, no model load).
    """
    import mlflow

    signature = mlflow.models.get_model_info(model_uri).signature
    if signature is None or signature.inputs is None:
        return None
    required = [c.name for c in signature.inputs.inputs if getattr(c, "required", True)]
    optional = [c.name for c in signature.inputs.inputs if not getattr(c, "required", True)]
    return required, optional


def schema_diff(required: Iterable[str], optional: Iterable[str], table_columns: Iterable[str]) -> SchemaDiff:
    """Compare a model's input columns with a table's columns (the partition column ``ds`` is not an input)."""
    table = [c for c in table_columns if c != "ds"]
    required, known = list(required), set(required) | set(optional)
    present = set(table)
    return SchemaDiff(
        missing=tuple(c for c in required if c not in present),
        extra=tuple(c for c in table if c not in known),
    )


def feature_table_columns(ds: str) -> list[str]:
    """Columns physically present in features.user_features for ``ds`` (what scoring will really read).

    Falls back to the catalog's declared columns when the partition has no files yet.
    """
    import pyarrow.dataset as pads

    from core import tables, warehouse
    path = warehouse.partition_path("features.user_features", ds)
    if os.path.isdir(path) and any(p.suffix == ".parquet" for p in Path(path).iterdir()):
        return list(pads.dataset(path, format="parquet").schema.names)
    return list(tables.table("features.user_features").column_names)


def check_model_schema(model_uri: str, ds: str, label: str = "model") -> SchemaDiff:
    """Raise SchemaMismatch (naming the missing and extra columns) if the model cannot read the table."""
    columns = model_input_columns(model_uri)
    if columns is None:
        return SchemaDiff((), ())
    diff = schema_diff(*columns, feature_table_columns(ds))
    if not diff.compatible:
        raise SchemaMismatch(
            f"{label} {model_uri} does not match features.user_features ds={ds}: {diff.describe()}"
        )
    return diff

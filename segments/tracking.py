"""MLflow wiring shared by training (ml/) and scoring (jobs/): tracking/registry URIs, experiment, aliases.

Everything comes from ``segments.settings`` so that ``SEGMENTS_HOME`` alone selects a platform. MLflow is
imported inside the functions: the Airflow environment and the CLI import this module cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from segments import settings as settings_mod

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


def _set_uris() -> settings_mod.Settings:
    import mlflow

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


def configure_mlflow() -> str:
    """Point MLflow at the platform's server, ensure the experiment exists, make it active.

    Returns the experiment id.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    # Download progress bars would clutter job logs (training and scoring fetch artifacts).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    s = _set_uris()
    client = mlflow.tracking.MlflowClient(tracking_uri=s.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(
                EXPERIMENT_NAME, artifact_location=_artifact_location(s.mlflow_artifact_root)
            )
        except MlflowException:
            # Another process created it between our lookup and create: use theirs.
            experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
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
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
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

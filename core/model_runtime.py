"""A registered model version's own scoring code: fetch the version once, import the runtime it carries.

Every version carries ``ml/runtime/`` as it was at registration (artifact ``runtime``). Every consumer
(the promotion gate, Spark workers, ``mlflow.pyfunc.load_model``) loads a version through here, which
imports that packaged copy under a module name unique to the model directory: never the installed
``ml`` package. Editing ``ml/`` therefore changes nothing for a registered version until a new one is
trained. Stdlib only at import; MLflow only to download.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

from core import settings as settings_mod
from core.errors import PlatformError

RUNTIME_ARTIFACT = "runtime"


class ModelWithoutRuntime(PlatformError):
    """A version logged before models carried their own scoring code."""

    hint = "retrain (segments train --ds <ds>): versions registered before the model runtime cannot be scored"


def import_runtime(path: str | Path) -> ModuleType:
    """Import the runtime package at ``path`` under a name unique to that folder (cached per process)."""
    root = Path(path).resolve()
    name = "_model_runtime_" + hashlib.sha1(str(root).encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, root / "__init__.py", submodule_search_locations=[str(root)])
    if spec is None or spec.loader is None:
        raise ModelWithoutRuntime(f"no model runtime package in {root}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before exec: the package's relative imports resolve through it
    spec.loader.exec_module(module)
    return module


def segmenter_from_artifacts(artifacts: Mapping[str, str], engine: str = "auto") -> Any:
    """The version's ``Segmenter`` from local artifact paths keyed like the pyfunc's ``context.artifacts``."""
    if RUNTIME_ARTIFACT not in artifacts:
        raise ModelWithoutRuntime(f"the model has no '{RUNTIME_ARTIFACT}' artifact (artifacts: {sorted(artifacts)})")
    runtime = import_runtime(artifacts[RUNTIME_ARTIFACT])
    segmenter = importlib.import_module(f"{runtime.__name__}.segmenter")
    return segmenter.Segmenter.load(artifacts, engine)


def model_artifacts(model_dir: str | Path) -> dict[str, str]:
    """Local paths of a downloaded model's artifacts, read from its MLmodel file."""
    import yaml

    root = Path(model_dir)
    mlmodel = yaml.safe_load((root / "MLmodel").read_text(encoding="utf-8"))
    artifacts = mlmodel["flavors"]["python_function"].get("artifacts", {})
    return {key: str(root / spec["path"]) for key, spec in artifacts.items()}


def load_segmenter(model_dir: str | Path, engine: str = "auto") -> Any:
    """The ``Segmenter`` of a downloaded model directory, run by the code packaged with it."""
    return segmenter_from_artifacts(model_artifacts(model_dir), engine)


def local_model_dir(model_uri: str, name: str) -> Path:
    """The model's files on this machine, downloaded once per version under SEGMENTS_HOME/tmp/models.

    A registered version's artifacts never change, so a later run (the next day) reuses the copy. The
    directory is named after where the version's artifacts are stored too: the same name and version
    number in another registry (or a recreated one) is another model, and Spark refuses to ship two
    different directories under one name in a session.
    """
    import mlflow

    from core.model_registry import mlflow_client

    registered = model_uri.removeprefix("models:/")
    model_name, _, version = registered.rpartition("/")
    source = mlflow_client().get_model_version_download_uri(model_name, version) if model_name else model_uri
    name = f"{name}-{hashlib.sha256(source.encode()).hexdigest()[:10]}"
    target = settings_mod.load().home / "tmp" / "models" / name
    if not (target / "MLmodel").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(staging))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # atomic: a half-downloaded model is never picked up
    return target

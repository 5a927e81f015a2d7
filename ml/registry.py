"""The registered segmenter versions over the MLflow registry: list, promote, roll back.

Aliases: ``champion`` (scored daily), ``challenger`` (the latest trained version), ``previous`` (the
champion before the last promotion: the rollback target). The promotion gate (``ml/gate.py``) and the
``segments model list|promote|rollback`` commands move them only through here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from core.errors import PlatformError
from core.model_registry import CHALLENGER, CHAMPION, PREVIOUS, is_not_found


class NoSuchVersion(PlatformError):
    """A version or alias the command needs does not exist in the registry."""


def set_champion(client: Any, model_name: str, version: str, reason: str, kind: str) -> str | None:
    """champion := version, previous := the old champion (if any and different). Returns the old one."""
    version = str(version)
    incumbent = alias_version(client, model_name, CHAMPION)
    if incumbent is not None and incumbent != version:
        client.set_registered_model_alias(model_name, PREVIOUS, incumbent)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, "promotion.kind", kind)
    client.set_model_version_tag(model_name, version, "promotion.reason", reason[:5000])
    if incumbent is not None and incumbent != version:
        client.set_model_version_tag(model_name, version, "promotion.replaced", incumbent)
    return incumbent


def alias_version(client: Any, model_name: str, alias: str) -> str | None:
    """The version holding ``alias``, or None when there is none (a registry that cannot be asked raises)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: tuple[str, ...]
    ds: str
    holdout_macro_f1: str
    created: str  # UTC, from the registry's creation timestamp
    run_id: str


def list_versions(client: Any, model_name: str) -> list[VersionRow]:
    """Every registered version, newest first."""
    versions = client.search_model_versions(f"name='{model_name}'")
    # search results do not carry aliases (SQLite store); the registered model has alias -> version.
    by_version: dict[str, list[str]] = {}
    if versions:
        for alias, version in (client.get_registered_model(model_name).aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
    rows = []
    for v in versions:
        created = dt.datetime.fromtimestamp(v.creation_timestamp / 1000, tz=dt.timezone.utc)
        rows.append(VersionRow(
            version=str(v.version),
            aliases=tuple(sorted(by_version.get(str(v.version), []))),
            ds=v.tags.get("ds", ""),
            holdout_macro_f1=v.tags.get("holdout_macro_f1", ""),
            created=created.strftime("%Y-%m-%d %H:%M:%S"),
            run_id=v.run_id or "",
        ))
    return sorted(rows, key=lambda r: int(r.version), reverse=True)


def promote(client: Any, model_name: str, version: str | None, reason: str) -> tuple[str, str | None]:
    """Manual promotion of ``version`` (default: the challenger). Returns (new champion, old champion)."""
    if version is None:
        version = alias_version(client, model_name, CHALLENGER)
        if version is None:
            raise NoSuchVersion(f"model {model_name} has no 'challenger' version",
                                hint="train one (segments train --ds <ds>) or pass --version")
    version = str(version)
    if not _version_exists(client, model_name, version):
        raise NoSuchVersion(f"model {model_name} has no version {version}", hint="see: segments model list")
    incumbent = alias_version(client, model_name, CHAMPION)
    if incumbent == version:
        raise NoSuchVersion(f"{model_name} v{version} is already champion", hint="see: segments model list")
    set_champion(client, model_name, version, f"manual: {reason}", "manual")
    return version, incumbent


def rollback(client: Any, model_name: str, reason: str) -> tuple[str, str]:
    """champion := previous in one step. Returns (restored champion, demoted version).

    The alias 'previous' is removed (a second rollback fails instead of flip-flopping); the demoted
    version is tagged so the listing shows why it lost the alias. Undo with ``promote --version``.
    """
    previous = alias_version(client, model_name, PREVIOUS)
    if previous is None:
        raise NoSuchVersion(
            f"model {model_name} has no 'previous' version to roll back to",
            hint="only a promotion sets 'previous'; pick a version with: segments model list, then "
            "segments model promote --version N",
        )
    demoted = alias_version(client, model_name, CHAMPION) or ""
    client.set_registered_model_alias(model_name, CHAMPION, previous)
    client.delete_registered_model_alias(model_name, PREVIOUS)
    client.set_model_version_tag(model_name, previous, "promotion.kind", "rollback")
    client.set_model_version_tag(model_name, previous, "promotion.reason", f"rollback: {reason}"[:5000])
    if demoted:
        client.set_model_version_tag(model_name, demoted, "rolled_back", f"replaced by v{previous}: {reason}"[:5000])
    return previous, demoted


def _version_exists(client: Any, model_name: str, version: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model_name, version)
    except MlflowException as exc:
        if is_not_found(exc):
            return False
        raise
    return True

"""The one error type of the ingest: printed by the CLI as ``error: ...`` plus a hint."""

from __future__ import annotations

from core.errors import PlatformError


class IngestError(PlatformError):
    """Bad mapping or bad input: nothing was written."""

    hint = "fix the mapping file or the input (docs/ingest.md lists every error and its fix); nothing was written"

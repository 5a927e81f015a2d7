"""The daily chain, declared once: the DAG ``segment_users_daily`` and ``segments run`` both follow it.

Stdlib only: the Airflow environment imports it at DAG parse time. Each stage is a ``segments``
subcommand run for the logical date ``ds``; a failed stage stops the chain, so a failed gate leaves
everything downstream (and the published BI tables) as it was.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    task_id: str  # the Airflow task id
    command: tuple[str, ...]  # the ``segments`` subcommand and its arguments, without ``--ds``
    spark: bool  # submitted with spark-submit (else the job environment's command)
    outlet: str | None = None  # the table (or "bi.segments") the stage publishes, for Airflow Assets

    def args(self, ds: str) -> list[str]:
        return [*self.command, "--ds", ds]


# Per-user tables are validated with GX's pandas engine (their suites say so): no JVM to start.
DAILY_CHAIN: tuple[Stage, ...] = (
    Stage("validate_raw", ("validate", "--table", "raw"), spark=True),  # each of the shop's raw tables
    Stage("build_features", ("features",), spark=True, outlet="features.user_features"),
    Stage("validate_features", ("validate", "--table", "features.user_features"), spark=False),
    Stage("score", ("score",), spark=True, outlet="segments.user_segments"),
    Stage("validate_segments", ("validate", "--table", "segments.user_segments"), spark=False),
    Stage("profiles", ("profiles",), spark=True, outlet="segments.segment_profiles"),
    Stage("publish", ("publish",), spark=False, outlet="bi.segments"),
)


def describe(chain: tuple[Stage, ...] = DAILY_CHAIN) -> str:
    """'validate raw -> features -> ...': the chain in one line, for help texts."""
    return " -> ".join(" ".join(s.command).replace("--table ", "") for s in chain)

"""``bin/backfill``: backfill a date range of the daily DAG through the running scheduler, and say what happened.

Runs in the Airflow environment, against the metadata database of the running deployment (the stack of
``make up``). It creates an Airflow backfill with one active run at a time, oldest date first (the
feature states of a date build on the date before), optionally reprocessing dates that already ran,
with the run conf ``{"model": ...}`` (app/chain's model choice). It prints, per date, whether the run was
created, reprocessed or skipped (and why), then follows the runs until they end, one line per date.
Exit status: 0 when every run succeeded, 1 otherwise (the failed dates and their log folders named).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass

from core.settings import MODEL_CHOICES

DAG_ID = "segment_users_daily"
REPROCESS = ("none", "failed", "completed")  # Airflow's reprocess behaviours


class BackfillError(RuntimeError):
    """A backfill that cannot start; the message says what to do."""


@dataclass(frozen=True)
class DateOutcome:
    ds: str
    action: str  # "created", "reprocessed" or "skipped"
    reason: str = ""  # why a date was skipped
    run_id: str | None = None


def _utc(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)


def _date(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def check_deployment(dag_id: str, unpause: bool = False) -> None:
    """A scheduler on a database that allows one (not SQLite), the DAG parsed and unpaused (``unpause``:
    unpause it): else BackfillError. The scheduler never starts a run of a paused DAG, backfills included."""
    from airflow.configuration import conf
    from airflow.jobs.job import most_recent_job
    from airflow.models.dag import DagModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    url = conf.get("database", "sql_alchemy_conn")
    if url.startswith("sqlite"):
        raise BackfillError("Airflow's metadata database is SQLite, which cannot run a backfill beside the "
                            "scheduler; start the stack first: make up")
    with create_session() as session:
        job = most_recent_job("SchedulerJob", session=session)
        if job is None or not job.is_alive():
            raise BackfillError("no Airflow scheduler is running, so no run would start; start the stack: "
                                "make up (make status shows it)")
        if session.scalar(SerializedDagModel.latest_item_select_object(dag_id)) is None:
            raise BackfillError(f"DAG {dag_id} is not parsed yet; wait for the dag-processor (make status) "
                                "and try again")
        if session.scalar(select(DagModel.is_paused).where(DagModel.dag_id == dag_id)):
            if not unpause:
                raise BackfillError(f"DAG {dag_id} is paused, and the scheduler starts no run of a paused DAG, "
                                    "backfills included; unpause it (--unpause, or bin/airflow dags unpause "
                                    f"{dag_id}): its daily schedule then starts too, with the latest day")
            session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))
            print(f"unpaused {dag_id}")


def wait_closed(dag_id: str, timeout: float = 75.0) -> None:
    """Wait until the scheduler has closed the open backfills of ``dag_id`` whose runs have all ended (it
    checks every 30 s); a backfill with runs still queued or running is left alone."""
    from airflow.models.backfill import Backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    while True:
        with create_session() as session:
            open_ids = session.scalars(select(Backfill.id).where(
                Backfill.dag_id == dag_id, Backfill.completed_at.is_(None))).all()
            busy = session.scalar(select(DagRun.id).where(
                DagRun.backfill_id.in_(open_ids), DagRun.state.in_((DagRunState.QUEUED, DagRunState.RUNNING)))
                .limit(1)) if open_ids else None
        if not open_ids or busy is not None or time.monotonic() > deadline:
            return
        time.sleep(2)


def create(dag_id: str, first: str, last: str, reprocess: str, model: str, user: str) -> tuple[int, list[DateOutcome]]:
    """Create the backfill; return its id and what happened to each date, oldest first."""
    from airflow.models.backfill import (
        BackfillDagRun,
        NoBackfillRunsToCreate,
        ReprocessBehavior,
        _create_backfill,
    )
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    start, end = _utc(first), _utc(last)
    wait_closed(dag_id)  # a backfill whose runs just ended is closed by the scheduler within 30 s
    with create_session() as session:
        existed = set(session.scalars(select(DagRun.logical_date).where(
            DagRun.dag_id == dag_id, DagRun.logical_date >= start, DagRun.logical_date <= end)))
    try:
        backfill = _create_backfill(dag_id=dag_id, from_date=start, to_date=end, max_active_runs=1, reverse=False,
                                    dag_run_conf={"model": model}, triggering_user_name=user,
                                    reprocess_behavior=ReprocessBehavior(reprocess))
    except NoBackfillRunsToCreate:
        raise BackfillError(f"no run of {dag_id} to create between {first} and {last}: the dates must be "
                            "whole past days on or after the DAG's start date (SEGMENTS_START_DATE)") from None
    except Exception as exc:  # Airflow's own refusals (another backfill running, bad range) are one line
        if type(exc).__module__.startswith("airflow"):
            raise BackfillError(str(exc)) from None
        raise
    with create_session() as session:
        rows = session.execute(
            select(BackfillDagRun.logical_date, BackfillDagRun.exception_reason, DagRun.run_id)
            .outerjoin(DagRun, DagRun.id == BackfillDagRun.dag_run_id)
            .where(BackfillDagRun.backfill_id == backfill.id).order_by(BackfillDagRun.sort_ordinal)).all()
    outcomes = []
    for logical_date, reason, run_id in rows:
        ds = logical_date.date().isoformat()
        if reason:
            outcomes.append(DateOutcome(ds, "skipped", str(getattr(reason, "value", reason)), None))
        else:
            outcomes.append(DateOutcome(ds, "reprocessed" if logical_date in existed else "created", "", run_id))
    return backfill.id, outcomes


def summary(outcomes: list[DateOutcome], reprocess: str) -> str:
    """'3 created, 1 reprocessed, 2 skipped (already ran: ...)' and what to do when nothing will run."""
    counts = {a: sum(o.action == a for o in outcomes) for a in ("created", "reprocessed", "skipped")}
    text = ", ".join(f"{n} {a}" for a, n in counts.items())
    if counts["created"] + counts["reprocessed"] == 0:
        text += "; nothing to run"
        if reprocess != "completed":
            text += " (dates that already ran are skipped: --reprocess completed runs them again)"
    return text


def follow(dag_id: str, outcomes: list[DateOutcome], poll_seconds: float = 5.0,
           out=sys.stdout) -> dict[str, str]:
    """Wait for the runs of the backfill, printing one line per date as it ends; return ds -> final state."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    pending = {o.run_id: o.ds for o in outcomes if o.run_id}
    states: dict[str, str] = {}
    started = time.monotonic()
    while pending:
        with create_session() as session:
            runs = session.execute(select(DagRun.run_id, DagRun.state, DagRun.start_date, DagRun.end_date).where(
                DagRun.dag_id == dag_id, DagRun.run_id.in_(list(pending)))).all()
            for run_id, state, begin, end in runs:
                if state not in (DagRunState.SUCCESS, DagRunState.FAILED):
                    continue
                ds = pending.pop(run_id)
                states[ds] = str(state.value if hasattr(state, "value") else state)
                took = f"{(end - begin).total_seconds():.0f}s" if begin and end else "?"
                line = f"  {ds}: {states[ds]} ({took}; {len(states)} of {len(states) + len(pending)} done, " \
                       f"{time.monotonic() - started:.0f}s since start)"
                if states[ds] != "success":
                    failed = session.scalars(select(TaskInstance.task_id).where(
                        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id,
                        TaskInstance.state.in_(("failed", "upstream_failed")))).all()
                    line += (f"; failed task(s): {', '.join(failed) or '?'}; logs under "
                             f"$AIRFLOW_HOME/logs/dag_id={dag_id}/run_id={run_id}/")
                print(line, file=out, flush=True)
        if pending:
            time.sleep(poll_seconds)
    return states


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bin/backfill",
        description="Backfill a date range of the daily DAG through the running scheduler (make up): one date "
                    "at a time, oldest first; reports what it created, reprocessed and skipped, then follows "
                    "the runs.")
    parser.add_argument("--from", dest="first", type=_date, required=True, metavar="DATE", help="first date")
    parser.add_argument("--to", dest="last", type=_date, required=True, metavar="DATE", help="last date (inclusive)")
    parser.add_argument("--reprocess", choices=REPROCESS, default="none",
                        help="none (default): skip dates that already ran; failed: rerun failed ones; "
                        "completed: rerun every date")
    parser.add_argument("--model", choices=MODEL_CHOICES, default=MODEL_CHOICES[0],
                        help="recorded (default): each date keeps the model version that first labelled it; "
                        "champion: relabel with the current champion")
    parser.add_argument("--dag", default=DAG_ID, help=f"DAG id (default {DAG_ID})")
    parser.add_argument("--unpause", action="store_true",
                        help="unpause the DAG first when it is paused (its daily schedule starts too)")
    parser.add_argument("--no-wait", action="store_true", help="create the runs and return")
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between checks while following")
    args = parser.parse_args(argv)
    if args.first > args.last:
        parser.error(f"--from {args.first} is after --to {args.last}")
    try:
        check_deployment(args.dag, args.unpause)
        backfill_id, outcomes = create(args.dag, args.first, args.last, args.reprocess, args.model,
                                       user="bin/backfill")
    except BackfillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"backfill {backfill_id} of {args.dag}, {args.first} .. {args.last} (model: {args.model}): "
          f"{summary(outcomes, args.reprocess)}")
    for o in outcomes:
        print(f"  {o.ds}: {o.action}" + (f" ({o.reason})" if o.reason else ""))
    if args.no_wait or not any(o.run_id for o in outcomes):
        return 0
    print("following the runs (Ctrl-C stops following, not the runs):", flush=True)
    try:
        states = follow(args.dag, outcomes, args.poll)
    except KeyboardInterrupt:
        print("stopped following; the runs go on (the UI, or bin/airflow dags list-runs, shows them)")
        return 130
    failed = sorted(ds for ds, state in states.items() if state != "success")
    print(f"done: {len(states) - len(failed)} succeeded, {len(failed)} failed" +
          (f" ({', '.join(failed)})" if failed else ""), flush=True)
    wait_closed(args.dag)  # the scheduler closes it within 30 s: then the next backfill can start at once
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

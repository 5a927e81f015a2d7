"""Alerts of the DAGs: an Airflow notifier (Airflow environment only; ``dags/_common.py`` imports it when an
alert destination is configured, and nothing else does).

Destinations, read from the environment when an alert is sent (so a token never lands in a serialized DAG):

- ``SEGMENTS_ALERT_WEBHOOK``: a URL that gets an HTTP POST of one JSON object per alert: ``event``
  (``task_failed`` or ``run_late``), ``dag``, ``run``, ``task`` (null for a late run), ``ds``, ``state``,
  ``error`` (one line: the command's ``error: ...`` line, or what the wait missed), ``log_url``, ``try``. The
  URL may hold a token: only its host is ever logged.
- ``SEGMENTS_ALERT_EMAIL``: comma-separated addresses, mailed through Airflow's SMTP provider (connection
  ``smtp_default``, or ``[email] email_conn_id``); sender ``SEGMENTS_ALERT_EMAIL_FROM`` or the connection's.

Neither set: the DAGs attach no notifier at all. Where it runs: a failed task's ``on_failure_callback`` in the
task's own process (worker, or ``airflow dags test``); the late-run ``DeadlineAlert``'s callback in the
triggerer, which gets a smaller context (the run, the deadline): every one of these processes needs the
variables.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

WEBHOOK = "SEGMENTS_ALERT_WEBHOOK"
EMAIL = "SEGMENTS_ALERT_EMAIL"
EMAIL_FROM = "SEGMENTS_ALERT_EMAIL_FROM"
TIMEOUT_SECONDS = 10


class AlertNotDelivered(RuntimeError):
    """A destination refused or could not be reached (the message names its host, never the URL)."""


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    return (errors[-1] if errors else lines[0] if lines else "")[:1000]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def _when(value: Any) -> datetime | None:
    """A time of the deadline context: a datetime or an ISO-8601 string (``...Z`` included); else None."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _ds(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)[:10] if value else None


def task_alert(context: dict) -> dict[str, Any]:
    """The alert of a task that failed for good, from its Airflow context."""
    ti = context.get("ti") or context.get("task_instance")
    exception = context.get("exception")
    dag = context.get("dag")
    state = _get(ti, "state") or "failed"
    return {
        "event": "task_failed",
        "dag": _get(ti, "dag_id") or _get(dag, "dag_id"),
        "run": context.get("run_id") or _get(ti, "run_id"),
        "task": _get(ti, "task_id"),
        "ds": context.get("ds") or _ds(context.get("logical_date")),
        "state": str(getattr(state, "value", state)),
        "error": _first_line(exception) if exception is not None else "",
        "log_url": _get(ti, "log_url"),
        "try": _get(ti, "try_number"),
    }


def late_alert(context: dict, late_after_hours: float | None) -> dict[str, Any] | None:
    """The alert of a daily run past its deadline, from the triggerer's context of a missed DeadlineAlert;
    None when it is no news: a backfill, or a run created after its deadline (a past date, run on purpose),
    or a run that has failed (its failure was alerted already)."""
    run = context.get("dag_run") or {}
    deadline = (context.get("deadline") or {}).get("deadline_time")
    run_type, state = str(run.get("run_type") or ""), str(run.get("state") or "")
    queued, due = _when(run.get("queued_at")), _when(deadline)
    if run_type == "backfill" or state in ("failed", "success"):
        return None
    if queued and due and queued.tzinfo and due.tzinfo and queued > due:
        return None
    dag_id, run_id = run.get("dag_id"), run.get("dag_run_id")
    after = f" ({late_after_hours:g} h after its day ended)" if late_after_hours is not None else ""
    due_text = due.isoformat() if due else deadline
    from airflow.configuration import conf

    base_url = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return {
        "event": "run_late",
        "dag": dag_id,
        "run": run_id,
        "task": None,
        "ds": _ds(run.get("logical_date") or run.get("data_interval_start")),
        "state": state or "running",
        "error": f"the run has not finished by its deadline {due_text}{after}",
        "log_url": f"{base_url}/dags/{dag_id}/runs/{quote(run_id)}" if dag_id and run_id else None,
        "try": None,
    }


def webhook_host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def post_webhook(url: str, alert: dict[str, Any]) -> None:
    host = webhook_host(url)
    headers = {"Content-Type": "application/json", "User-Agent": "segments-alerts"}
    request = urllib.request.Request(url, data=json.dumps(alert).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise AlertNotDelivered(f"webhook host {host} answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise AlertNotDelivered(f"webhook host {host} unreachable: {exc.reason}") from None
    except Exception as exc:  # a malformed URL's message would quote it: name the kind only
        raise AlertNotDelivered(f"webhook host {host}: {type(exc).__name__}") from None
    log.info("alert %s of %s sent to webhook host %s (HTTP %s)", alert["event"], alert["dag"], host, status)


def send_email(addresses: str, alert: dict[str, Any], context: dict) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    what = f"{alert['dag']} {alert['task'] or 'run'} ds={alert['ds']}"
    subject = f"[segments] {'late' if alert['event'] == 'run_late' else 'failed'}: {what}"
    rows = "".join(f"<tr><th align=left>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in alert.items())
    notifier = SmtpNotifier(to=[a.strip() for a in addresses.split(",") if a.strip()],
                            from_email=os.environ.get(EMAIL_FROM, "").strip() or None,
                            subject=subject, html_content=f"<table>{rows}</table>")
    try:
        notifier.notify(context)  # pre-rendered: an error line is never read as a template
    except Exception as exc:
        raise AlertNotDelivered(f"email to {len(notifier.to)} address(es): {type(exc).__name__}: {exc}") \
            from None
    log.info("alert %s of %s mailed to %d address(es)", alert["event"], alert["dag"], len(notifier.to))


def deliver(alert: dict[str, Any], context: dict) -> None:
    """Send ``alert`` to every configured destination; AlertNotDelivered (after trying them all) if one
    failed."""
    failures = []
    url, addresses = os.environ.get(WEBHOOK, "").strip(), os.environ.get(EMAIL, "").strip()
    if not (url or addresses):
        log.info("no alert destination configured (%s, %s): alert %s not sent", WEBHOOK, EMAIL,
                 alert["event"])
        return
    for send in ([lambda: post_webhook(url, alert)] if url else []) + (
            [lambda: send_email(addresses, alert, context)] if addresses else []):
        try:
            send()
        except AlertNotDelivered as exc:
            log.error("alert not delivered: %s", exc)
            failures.append(str(exc))
    if failures:
        raise AlertNotDelivered("; ".join(failures))


class SegmentsNotifier(BaseNotifier):
    """Notifies the configured destinations: ``event="failed"`` as a task's ``on_failure_callback``,
    ``event="late"`` as the callback of the daily DAG's DeadlineAlert (``AsyncCallback``, run by the
    triggerer)."""

    def __init__(self, event: str = "failed", late_after_hours: float | None = None,
                 context: dict | None = None):
        super().__init__(context=context)
        if event not in ("failed", "late"):
            raise ValueError(f"event must be 'failed' or 'late', got {event!r}")
        self.event = event
        self.late_after_hours = late_after_hours

    def alert(self, context: dict) -> dict[str, Any] | None:
        return late_alert(context, self.late_after_hours) if self.event == "late" else task_alert(context)

    def notify(self, context: dict) -> None:
        alert = self.alert(context)
        if alert is None:
            log.info("deadline of %s passed, no alert: a backfill, a past date or a failed run",
                     (context.get("dag_run") or {}).get("dag_run_id"))
            return
        deliver(alert, context)

    async def async_notify(self, context: dict) -> None:
        await asyncio.to_thread(self.notify, context)

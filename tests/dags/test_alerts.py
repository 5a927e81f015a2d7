"""The notifier alone, against real local receivers: an HTTP server (the webhook), an SMTP server (email)."""

from __future__ import annotations

import asyncio
import json
import logging
import socketserver
import threading
from email import message_from_bytes
from types import SimpleNamespace

import pytest

from app import alerts

LOG_URL = "http://localhost:8080/dags/segment_users_daily/runs/r/tasks/segment_users"
TASK_CONTEXT = {
    "ti": SimpleNamespace(dag_id="segment_users_daily", run_id="scheduled__2026-06-30T00:00:00+00:00",
                          task_id="segment_users", try_number=2, state="failed", log_url=LOG_URL),
    "run_id": "scheduled__2026-06-30T00:00:00+00:00",
    "ds": "2026-06-30",
    "exception": RuntimeError("Cannot execute: spark-submit --master local[2] ... Error code is: 1.\n"
                              "Last spark-submit output:\n[validate] raw ok\n"
                              "error: MLflow tracking server http://mlflow:5000 is unreachable\n"
                              "hint: start it"),
}


def late_context(**run):
    return {"dag_run": {"dag_id": "segment_users_daily", "dag_run_id": "scheduled__2026-06-30T00:00:00+00:00",
                        "logical_date": "2026-06-30T00:00:00Z", "queued_at": "2026-07-01T00:00:05Z",
                        "run_type": "scheduled", "state": "running", **run},
            "deadline": {"id": "d1", "deadline_time": "2026-07-01T06:00:00+00:00"}}


@pytest.fixture()
def webhook(receiver, monkeypatch):
    monkeypatch.setenv("SEGMENTS_ALERT_WEBHOOK", receiver.url)
    monkeypatch.delenv("SEGMENTS_ALERT_EMAIL", raising=False)
    return receiver


def test_a_failed_task_is_posted_as_one_json_object(webhook, caplog):
    caplog.set_level(logging.INFO)
    alerts.SegmentsNotifier()(dict(TASK_CONTEXT))  # as Airflow calls an on_failure_callback
    assert webhook.received == [{
        "event": "task_failed", "dag": "segment_users_daily", "run": "scheduled__2026-06-30T00:00:00+00:00",
        "task": "segment_users", "ds": "2026-06-30", "state": "failed",
        "error": "error: MLflow tracking server http://mlflow:5000 is unreachable",
        "log_url": LOG_URL, "try": 2}]
    assert webhook.paths == ["/hooks/T000/s3cr3t-t0ken?key=s3cr3t-k3y"]
    assert "sent to webhook host 127.0.0.1 (HTTP 200)" in caplog.text
    assert not any(secret in caplog.text for secret in webhook.SECRETS)


def test_without_an_error_line_the_first_line_of_the_exception_is_sent(webhook):
    context = dict(TASK_CONTEXT,
                   exception=RuntimeError("raw.events ds=2026-06-30 has not arrived: no _SUCCESS"))
    alerts.SegmentsNotifier()(context)
    assert webhook.received[0]["error"] == "raw.events ds=2026-06-30 has not arrived: no _SUCCESS"


def test_a_refusing_webhook_is_reported_by_host_only(webhook, caplog):
    webhook.status = 500
    with pytest.raises(alerts.AlertNotDelivered) as failed:
        alerts.SegmentsNotifier()(dict(TASK_CONTEXT))
    assert str(failed.value) == "webhook host 127.0.0.1 answered HTTP 500"
    assert "127.0.0.1" in caplog.text and not any(secret in caplog.text for secret in webhook.SECRETS)


def test_an_unreachable_or_malformed_webhook_never_shows_its_url(monkeypatch, caplog):
    for url in ("http://127.0.0.1:9/hooks/s3cr3t-t0ken", "htp:/s3cr3t-t0ken"):
        monkeypatch.setenv("SEGMENTS_ALERT_WEBHOOK", url)
        with pytest.raises(alerts.AlertNotDelivered) as failed:
            alerts.SegmentsNotifier()(dict(TASK_CONTEXT))
        assert "s3cr3t" not in str(failed.value) and "s3cr3t" not in caplog.text


def test_no_destination_no_call_no_error(monkeypatch, caplog):
    monkeypatch.delenv("SEGMENTS_ALERT_WEBHOOK", raising=False)
    monkeypatch.delenv("SEGMENTS_ALERT_EMAIL", raising=False)
    caplog.set_level(logging.INFO)
    alerts.SegmentsNotifier()(dict(TASK_CONTEXT))
    assert "no alert destination configured" in caplog.text


def _callback_trigger(context: dict):
    """What the triggerer runs for a missed DeadlineAlert with ``AsyncCallback(SegmentsNotifier, kwargs)``."""
    from airflow.triggers.callback import CallbackTrigger

    trigger = CallbackTrigger("app.alerts.SegmentsNotifier",
                              {"event": "late", "late_after_hours": 6.0, "context": context})

    async def events():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(events())


def test_a_late_run_is_posted_by_the_triggerer_callback(webhook):
    events = _callback_trigger(late_context())
    assert [e["state"] for e in events] == ["running", "success"], events
    assert webhook.received == [{
        "event": "run_late", "dag": "segment_users_daily", "run": "scheduled__2026-06-30T00:00:00+00:00",
        "task": None, "ds": "2026-06-30", "state": "running",
        "error": "the run has not finished by its deadline 2026-07-01T06:00:00+00:00 "
                 "(6 h after its day ended)",
        "log_url": "http://localhost:8080/dags/segment_users_daily/runs/"
                   "scheduled__2026-06-30T00%3A00%3A00%2B00%3A00",
        "try": None}]


@pytest.mark.parametrize("run", [{"run_type": "backfill"}, {"state": "failed"},
                                 {"queued_at": "2026-12-06T08:00:00Z"}],
                         ids=["backfill", "failed-already-alerted", "created-after-its-deadline"])
def test_a_deadline_missed_by_design_is_no_news(webhook, run):
    events = _callback_trigger(late_context(**run))
    assert events[-1]["state"] == "success" and webhook.received == []


class SmtpReceiver(socketserver.ThreadingTCPServer):
    """Just enough SMTP (RFC 5321, no TLS, no auth) for smtplib to deliver a message to a list."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                send = lambda line: self.wfile.write(line.encode() + b"\r\n")  # noqa: E731
                send("220 localhost test SMTP")
                sender, recipients = "", []
                while line := self.rfile.readline():
                    verb = line.decode().strip().split(" ")[0].upper()
                    if verb in ("EHLO", "HELO"):
                        send("250 localhost")
                    elif verb == "MAIL":
                        sender, recipients = line.decode().strip(), []
                        send("250 OK")
                    elif verb == "RCPT":
                        recipients.append(line.decode().strip().split(":", 1)[1].strip("<> "))
                        send("250 OK")
                    elif verb == "DATA":
                        send("354 go ahead")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk
                        server.messages.append((sender, recipients, data))
                        send("250 OK queued")
                    elif verb == "QUIT":
                        send("221 bye")
                        return
                    else:
                        send("250 OK")

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture()
def mailbox(monkeypatch):
    server = SmtpReceiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": server.server_address[1],
            "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 5}}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("SEGMENTS_ALERT_EMAIL", "oncall@example.com, data@example.com")
    monkeypatch.setenv("SEGMENTS_ALERT_EMAIL_FROM", "segments@example.com")
    monkeypatch.delenv("SEGMENTS_ALERT_WEBHOOK", raising=False)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_failed_task_is_mailed_through_the_smtp_provider(mailbox):
    alerts.SegmentsNotifier()(dict(TASK_CONTEXT))
    [(sender, recipients, data)] = mailbox.messages
    assert "segments@example.com" in sender and recipients == ["oncall@example.com", "data@example.com"]
    mail = message_from_bytes(data)
    assert mail["Subject"] == "[segments] failed: segment_users_daily segment_users ds=2026-06-30"
    body = "".join(part.get_payload(decode=True).decode() for part in mail.walk() if not part.is_multipart())
    assert "error: MLflow tracking server http://mlflow:5000 is unreachable" in body


def test_both_destinations_get_the_alert(mailbox, receiver, monkeypatch):
    monkeypatch.setenv("SEGMENTS_ALERT_WEBHOOK", receiver.url)
    alerts.SegmentsNotifier()(dict(TASK_CONTEXT))
    assert len(mailbox.messages) == 1 and len(receiver.received) == 1

"""DAG tests run in the Airflow environment (.venv-airflow)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="session")
def common():
    """dags/_common.py as the DAG files import it (Airflow puts the DAG folder on sys.path)."""
    sys.path.insert(0, str(DAGS))
    try:
        sys.modules.pop("_common", None)
        import _common

        yield _common
    finally:
        sys.path.remove(str(DAGS))


class Receiver:
    """A real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it, answering ``status``."""

    def __init__(self):
        self.received: list[dict] = []
        self.paths: list[str] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.paths.append(self.path)
                receiver.received.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        # A token in the path and the query, as a chat webhook has: it must never be printed.
        return f"http://127.0.0.1:{self.server.server_port}/hooks/T000/s3cr3t-t0ken?key=s3cr3t-k3y"

    SECRETS = ("s3cr3t-t0ken", "s3cr3t-k3y")


@pytest.fixture()
def receiver():
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()

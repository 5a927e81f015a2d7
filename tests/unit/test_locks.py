"""core/locks.py: one writer per date, across processes; re-entrant within one; released by a dead holder."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from core import locks
from core.locks import DateLocked, date_lock

DS = "2026-03-30"

# A holder in another process: takes the lock of argv[1] as command argv[2], says so, then waits.
HOLD = """
import sys, time
from core.locks import date_lock
with date_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""

# Another process trying the lock of argv[1]: exit 0 if it got it, 3 (printing the message) if refused.
TRY = """
import sys
from core.locks import DateLocked, date_lock
try:
    with date_lock(sys.argv[1], "probe"):
        pass
except DateLocked as exc:
    print(exc)
    sys.exit(3)
"""


@pytest.fixture
def holder(platform_home):
    """Start a process holding the lock of DS as 'segments run --ds DS'; kill it at the end."""
    started = []

    def start(ds: str = DS, command: str = f"segments run --ds {DS}") -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLD, ds, command], stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def _other_process_gets(ds: str) -> bool:
    result = subprocess.run([sys.executable, "-c", TRY, ds], capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 3), result.stderr
    return result.returncode == 0


def test_a_second_writer_fails_at_once_naming_the_holder(holder):
    process = holder()
    with pytest.raises(DateLocked) as refused:
        with date_lock(DS, "segments features --ds 2026-03-30 --refit-params"):
            pytest.fail("two holders of one date")
    pattern = (rf"ds={DS} is being written by 'segments run --ds {DS}' "
               rf"\(pid {process.pid} on {re.escape(socket.gethostname())}, "
               r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)")
    assert re.fullmatch(pattern, str(refused.value))
    assert "two writers of one date would mix their outputs" in refused.value.hint


def test_other_dates_are_not_locked(holder):
    holder(DS)
    with date_lock("2026-03-31", "segments run --ds 2026-03-31"):
        assert not _other_process_gets(DS)


def test_a_killed_holder_releases_the_lock(holder):
    process = holder()
    assert not _other_process_gets(DS)
    process.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the flock with the process
    process.wait()
    with date_lock(DS, "segments run --ds 2026-03-30"):
        assert not _other_process_gets(DS)
    assert _other_process_gets(DS)


def test_reentrant_within_one_process_and_released_by_the_outermost_exit(platform_home):
    with date_lock(DS, "segments run --ds 2026-03-30"):
        with date_lock(DS, "segments features --ds 2026-03-30"):  # a stage of the run takes it again
            pass
        assert not _other_process_gets(DS)  # the inner exit did not release the run's lock
    assert _other_process_gets(DS)


def test_released_when_the_block_raises(platform_home):
    with pytest.raises(ZeroDivisionError):
        with date_lock(DS, "segments run --ds 2026-03-30"):
            1 / 0
    assert _other_process_gets(DS)


def test_a_holder_that_has_not_described_itself_yet(platform_home, monkeypatch):
    # Between a holder's flock and its description there is a moment with an empty file.
    monkeypatch.setattr(locks, "_DESCRIPTION_WAIT_SECONDS", 0.2)
    path = locks.lock_dir() / f"ds={DS}.lock"
    path.parent.mkdir(parents=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a separate open: conflicts like another process
        with pytest.raises(DateLocked, match=r"is being written by another process \(it has not said which\)"):
            with date_lock(DS, "segments run --ds 2026-03-30"):
                pass
    finally:
        os.close(fd)

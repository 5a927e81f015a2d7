"""Write locks under ``$SEGMENTS_HOME/locks``: one writer per date, and who is writing a table.

``date_lock(ds, command)``: the commands that write the partitions of a date hold it for the whole
command (``segments run`` for the whole chain), so two writers of one date never interleave; the second
fails at once naming the first. ``table_writer(name, tidy)``: every warehouse write holds a shared lock
on its table, so a writer can tell whether the hidden staging directories in the table folder belong
to a live writer or were left by a killed one. ``acquire``/``release`` (any path): the exclusive,
self-describing lock the date lock and the DuckDB publisher's lock (beside its file; it waits its turn)
are built on.

Both are ``flock`` locks: the kernel releases them when the holding process ends in any way (kill -9
included), so there is never a stale lock to remove by hand. They are advisory and as wide as the
``locks`` folder is shared: every host writing one warehouse must see the same ``SEGMENTS_HOME``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from core import settings as settings_mod
from core.errors import PlatformError

# How long a refused writer waits for the holder's description: the holder writes it right after it got
# the lock, so an empty file means "just acquired", not "nobody".
_DESCRIPTION_WAIT_SECONDS = 2.0


class DateLocked(PlatformError):
    """Another process is writing the partitions of this date."""

    hint = ("wait for it to finish, or stop it if it is stuck (a stopped or killed holder releases the lock "
            "at once); two writers of one date would mix their outputs")


def lock_dir() -> Path:
    """The folder of the lock files."""
    return settings_mod.load().home / "locks"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open's descriptors are not inherited by child processes (PEP 446): a Spark JVM or a subprocess
    # started while the lock is held cannot keep it alive after this process ends.
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o664)


# --- one writer per date -----------------------------------------------------------------------------
@dataclass
class _Held:
    fd: int
    depth: int = 1


# flock locks belong to an open file description: a second open of the same file in this process would
# conflict with the first. The process's held date locks are counted here instead, so a command that
# holds a date (`segments run`) can call the commands that take it again (its stages).
_held: dict[Path, _Held] = {}
_held_guard = threading.Lock()


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is the description it wrote."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def acquire(path: Path, command: str, wait_seconds: float = 0.0,
            waiting: Callable[[str], None] | None = None) -> int:
    """flock ``path`` exclusively, waiting at most ``wait_seconds`` for its holder (``waiting(holder)`` is
    called once if it has to wait), then write this process's description (``command``, pid, host, start
    time) into it for the next one; return the descriptor, for ``release``. Raises ``LockHeld``."""
    fd = _open(path)
    deadline = time.monotonic() + wait_seconds
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(_holder(fd)) from None
                if waiting is not None and not told:
                    waiting(_holder(fd))
                    told = True
                time.sleep(0.2)
    except BaseException:
        os.close(fd)
        raise
    since = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    me = {"command": command, "pid": os.getpid(), "host": socket.gethostname(), "since": since}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    return fd


def release(fd: int) -> None:
    """Release a lock ``acquire`` returned; its file no longer describes a holder."""
    os.ftruncate(fd, 0)  # a later refused process must not read a finished holder
    os.close(fd)  # releases the flock


@contextlib.contextmanager
def date_lock(ds: str, command: str) -> Iterator[None]:
    """Hold the write lock of ``ds`` while the block runs; raise ``DateLocked`` naming the holder if
    another process holds it. Re-entrant within one process; ``command`` describes this writer to others.
    """
    path = lock_dir() / f"ds={ds}.lock"
    with _held_guard:
        if path in _held:
            _held[path].depth += 1
        else:
            try:
                _held[path] = _Held(acquire(path, command))
            except LockHeld as exc:
                raise DateLocked(f"ds={ds} is being written by {exc.holder}") from None
    try:
        yield
    finally:
        with _held_guard:
            held = _held[path]
            held.depth -= 1
            if held.depth == 0:
                del _held[path]
                release(held.fd)


def _holder(fd: int) -> str:
    """The description the holder of a lock file wrote, as one phrase."""
    deadline = time.monotonic() + _DESCRIPTION_WAIT_SECONDS
    while True:
        try:
            h = json.loads(os.pread(fd, 4096, 0))
            return f"'{h['command']}' (pid {h['pid']} on {h['host']}, since {h['since']})"
        except (ValueError, KeyError, TypeError):  # not written yet, or half written
            if time.monotonic() > deadline:
                return "another process (it has not said which)"
            time.sleep(0.05)


# --- who is writing a table --------------------------------------------------------------------------
@contextlib.contextmanager
def table_writer(name: str, tidy: Callable[[], None]) -> Iterator[None]:
    """Hold a shared lock on table ``name`` while the block writes it; before that, if no other process
    (or thread) is writing the table, run ``tidy`` under an exclusive lock.

    Writers of different dates of one table run at once, each holding the lock shared. A killed writer
    holds nothing, so when the exclusive lock is free, whatever staging a writer left in the table
    folder is a leftover that ``tidy`` may remove; when it is not, everything is left alone.
    """
    fd = _open(lock_dir() / f"table={name}.lock")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another writer is active: its staging directories are live
        else:
            tidy()
        # Converting to shared lets other writers in, and blocks only while another process tidies.
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)

"""jobs/concurrent_actions.py: independent Spark actions run at once."""

from __future__ import annotations

import threading
import time

import pytest

from jobs import concurrent_actions


def test_independent_actions_run_at_once_and_a_failure_is_raised_once_all_have_finished():
    both_started = threading.Barrier(2, timeout=10)  # one action at a time would leave it broken

    def meet(result: str) -> str:
        both_started.wait()
        return result

    assert concurrent_actions.run_concurrently(lambda: meet("first"), lambda: meet("second")) == ["first", "second"]

    finished = threading.Event()

    def fail() -> None:
        raise ValueError("write failed")

    def slow() -> None:
        time.sleep(0.3)
        finished.set()

    with pytest.raises(ValueError, match="write failed"):
        concurrent_actions.run_concurrently(fail, slow)
    assert finished.is_set()  # the error came only after the other action had finished

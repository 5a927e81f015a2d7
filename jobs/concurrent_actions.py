"""Independent Spark actions at once, each from its own driver thread."""

from __future__ import annotations

import sys
from typing import Any, Callable

from pyspark import InheritableThread


def run_concurrently(*actions: Callable[[], Any]) -> list[Any]:
    """Run independent Spark actions at once, each from its own driver thread; return their results in order.

    On two cores one action's driver-side planning, small stages and single-task writes leave a core idle
    that the other's tasks use. Every action is waited for before the first failure is raised, so no job
    is still writing when the run reports its error. ``InheritableThread``: the JVM side of each thread gets
    the caller's local properties (job group, description) and is released when the thread ends.
    """
    results: list[Any] = [None] * len(actions)
    errors: list[BaseException | None] = [None] * len(actions)

    def run(i: int, action: Callable[[], Any]) -> None:
        try:
            results[i] = action()
        except BaseException as error:  # re-raised below, in the caller's thread
            errors[i] = error

    threads = [InheritableThread(target=run, args=(i, action), **_connect_session())
               for i, action in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


def _connect_session() -> dict[str, Any]:
    """``session=`` for ``InheritableThread`` under Spark Connect (it needs the client session; a local
    driver's threads inherit from the SparkContext)."""
    connect = sys.modules.get("pyspark.sql.connect.session")  # imported only by a Spark Connect client
    active = connect.SparkSession.getActiveSession() if connect else None
    return {"session": active} if active is not None else {}

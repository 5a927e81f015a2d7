"""Airflow triggers of the DAGs (Airflow environment only; the DAG helpers in ``dags/_common.py`` import it).

A trigger is imported by its class path in the triggerer, which, unlike the DAG processor and the workers,
does not put the DAG folder on ``sys.path``: so it lives in an installed package, here.

``WithDeadline`` runs another trigger (the standard provider's ``FileTrigger``, ``WorkflowTrigger``) until its
first event or an absolute deadline, whichever comes first, and then fires a "timeout" event that the
deferring sensor turns into a failure that names what it waited for. Airflow's own ``defer(timeout=...)``
applies under a triggerer only: ``airflow dags test`` runs a deferred trigger inline, to its first event,
with no timeout at all, so a wait for data that never comes would hang there. The deadline is absolute, so a
trigger that moves to another triggerer (or restarts) keeps it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

TIMEOUT = "timeout"  # the "status" of the event fired at the deadline


def _import(classpath: str) -> type[BaseTrigger]:
    from importlib import import_module

    module, _, name = classpath.rpartition(".")
    return getattr(import_module(module), name)


class WithDeadline(BaseTrigger):
    """The first event of the trigger ``classpath(**kwargs)``, or ``{"status": "timeout", **about}`` once
    ``deadline`` (an ISO-8601 UTC timestamp) has passed."""

    def __init__(self, classpath: str, kwargs: dict[str, Any], deadline: str,
                 about: dict[str, Any] | None = None):
        super().__init__()
        self.classpath = classpath
        self.kwargs = kwargs
        self.deadline = deadline
        self.about = about or {}

    @classmethod
    def wrap(cls, trigger: BaseTrigger, deadline: datetime,
             about: dict[str, Any] | None = None) -> WithDeadline:
        classpath, kwargs = trigger.serialize()
        return cls(classpath, kwargs, deadline.astimezone(timezone.utc).isoformat(), about)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"classpath": self.classpath, "kwargs": self.kwargs, "deadline": self.deadline,
                 "about": self.about})

    def seconds_left(self) -> float:
        return (datetime.fromisoformat(self.deadline) - datetime.now(timezone.utc)).total_seconds()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        events = _import(self.classpath)(**self.kwargs).run()
        try:
            event = await asyncio.wait_for(anext(events), timeout=max(0.0, self.seconds_left()))
        except (asyncio.TimeoutError, StopAsyncIteration):
            event = None
        finally:
            await events.aclose()
        if event is None:
            self.log.warning("deadline %s passed while waiting for %s", self.deadline,
                             self.about or self.classpath)
            event = TriggerEvent({"status": TIMEOUT, "deadline": self.deadline, **self.about})
        yield event

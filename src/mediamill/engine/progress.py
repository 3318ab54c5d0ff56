"""Progress snapshots and hooks: cross-cutting concerns that do nothing by default.

A hook that raises is logged and ignored: watching a job never breaks it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mediamill.core import ItemRef, Outcome

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Progress:
    job_id: str
    processor: str
    total: int
    processed: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    rate: float = 0.0
    eta_seconds: float | None = None
    elapsed: float = 0.0
    #: share of the elapsed time each worker spent processing items (0..1)
    busy: dict[str, float] = field(default_factory=dict)
    status: str = "running"
    #: items handed to the executor whose outcome has not come back yet
    in_flight: int = 0
    batch_size: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "processor": self.processor,
            "status": self.status,
            "total_items": self.total,
            "processed_items": self.processed,
            "succeeded": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "progress": self.processed / self.total if self.total else 1.0,
            "rate": round(self.rate, 2),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "elapsed": round(self.elapsed, 2),
            "busy": self.busy,
        }


class Hook:
    """Override what you need; every method does nothing by default."""

    def on_start(self, progress: Progress) -> None:
        """The job starts (or resumes)."""

    def on_outcome(self, item: ItemRef, outcome: Outcome) -> None:
        """One item finished (called in the runner thread, keep it cheap)."""

    def on_progress(self, progress: Progress) -> None:
        """A few times a second while the job runs."""

    def on_finish(self, progress: Progress) -> None:
        """The job ended: completed, failed, paused or cancelled (``progress.status``)."""


class Hooks:
    """Calls every hook, logging (not raising) what a hook raises."""

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.hooks = list(hooks)

    def call(self, method: str, *args: Any) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, method)(*args)
            except Exception:
                log.exception("hook %s.%s failed; the job goes on", type(hook).__name__, method)

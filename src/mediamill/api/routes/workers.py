"""Workers: the `mediamill worker` processes on the broker of the celery executor."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from mediamill.api.deps import ReadAuth, SettingsDep
from mediamill.api.schemas import ERRORS, WorkerList

router = APIRouter(prefix="/api/workers", tags=["workers"], responses=ERRORS)

#: seconds an answer is reused: asking the workers is a broadcast that waits ANSWER_WAIT
CACHE_SECONDS = 2.0
ANSWER_WAIT = 1.0


@router.get("", response_model=WorkerList, dependencies=[ReadAuth])
async def list_workers(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Every worker that answers within a second: host, pid, concurrency, queues, the
    processors it can run, its current batches, items done and its last heartbeat."""
    cached = getattr(request.app.state, "workers_answer", None)
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        answer: dict[str, Any] = cached[1]
        return answer
    answer = await run_in_threadpool(_ask, settings)
    request.app.state.workers_answer = (time.monotonic(), answer)
    return answer


def _ask(settings: Any) -> dict[str, Any]:
    from mediamill.executors.celery import CeleryConfig, list_workers

    config = CeleryConfig.from_settings(settings)
    try:
        workers = list_workers(config, timeout=ANSWER_WAIT)
    except Exception as exc:  # noqa: BLE001 - an unreachable broker is an answer, not a 500
        return {"broker": config.safe_broker, "workers": [], "error": str(exc)}
    return {"broker": config.safe_broker, "workers": workers, "error": None}

"""One log line per HTTP request (method, path, status, milliseconds), as plain ASGI so a
streamed answer (SSE) costs nothing extra. The query string is never logged: the page passes
its token there."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("mediamill.api.access")

Scope = dict[str, Any]
Message = dict[str, Any]


class AccessLog:
    """ASGI middleware: ``GET /api/jobs 200 3.1 ms`` at INFO (4xx and 5xx at WARNING)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                took = (time.perf_counter() - start) * 1000
                level = logging.WARNING if status >= 400 else logging.INFO
                log.log(level, "%s %s %d %.1f ms", scope["method"], scope["path"], status, took)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            raise

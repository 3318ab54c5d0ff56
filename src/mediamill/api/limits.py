"""The request body cap, answered as JSON like every other error (``{"detail": ...}``).

Starlette's own cap answers ``413 Content Too Large`` as plain text when the body announces
its length, and JSON only when it does not: a client reading ``detail`` got neither."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimit:
    """ASGI middleware: a body longer than ``max_bytes`` is a 413 with a JSON ``detail``.
    A declared ``Content-Length`` over the cap is refused before anything is read; a body
    sent without one (chunked) is counted as the route reads it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"the request body is larger than {max_bytes:,} bytes"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _content_length(scope) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0

        async def counting() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # raised where the route reads its body: the app answers it as JSON
                    raise HTTPException(413, detail=self.detail)
            return message

        await self.app(scope, counting, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": self.detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the unread body must not be taken for a request
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int:
    """The declared body length (0 when none or not a number)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0

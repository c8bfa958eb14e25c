"""One log line per request: method, path, status, duration in ms, and the run id when it started one.

Pure ASGI (not BaseHTTPMiddleware), so a streamed answer passes through unbuffered; the line is
written when the response has ended, however it ended. A request that raised before answering is
logged with status 500 (what the server's last-resort handler sends), one whose client left before
any status with 499, as nginx logs it.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("streamwise.http")

RUN_ID_KEY = "streamwise.run_id"


def note_run(request: Request, run_id: str) -> None:
    """Name the run a request started, for its log line."""
    request.scope[RUN_ID_KEY] = run_id


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, send_and_note)
        except Exception:  # a cancelled request (client gone) is not a failure: 499
            failed = True
            raise
        finally:
            took = (time.perf_counter() - started) * 1000
            shown = status if status is not None else (500 if failed else 499)
            run_id = scope.get(RUN_ID_KEY)
            logger.info(
                "%s %s %d %.1fms%s",
                scope.get("method", "-"),
                scope.get("path", "-"),
                shown,
                took,
                f" run={run_id}" if run_id else "",
            )

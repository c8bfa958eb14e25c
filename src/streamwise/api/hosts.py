"""Refuse requests addressed to a host name the server does not answer to (DNS rebinding).

A page on `http://attacker.example` can make its name resolve to 127.0.0.1 and then talk to a server
on the visitor's loopback as if it were its own site: same origin, so no CORS check applies. The
`Host` header still says `attacker.example`, and that is what is checked here, before anything else
(`streamwise.security.policy.HostRule` says which names pass). A request without a `Host` header
(HTTP/1.0 tools) is not one a browser sends and passes.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from streamwise.api.errors import error_response
from streamwise.security.policy import HostRule


class HostPolicy:
    def __init__(self, app: ASGIApp, rule: HostRule) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.rule.patterns:
            host = next((value for name, value in scope["headers"] if name == b"host"), None)
            if host is not None and not self.rule.allows(host.decode("latin-1")):
                response = error_response(
                    400,
                    "This server does not answer to that host name: add it to STREAMWISE_ALLOWED_HOSTS",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

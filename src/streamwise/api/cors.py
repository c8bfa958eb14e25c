"""Cross-origin calls: which routes answer other sites, and each chatflow's own list of allowed sites.

`install` adds the browser policy in front of the app:
- the routes Flowise's chat widget calls from the pages it is embedded in (prediction, the
  streaming check, abort, public-chatbotConfig, feedback; and a run's events, for a page that
  resumes a stream) go through Starlette's CORSMiddleware with
  the origins of `STREAMWISE_CORS_ORIGINS` (`*` by default, as Flowise's `CORS_ORIGINS`), preflight
  `OPTIONS` included;
- every other route (chatflows, chat history, upsert, ...) answers no other site: a browser request
  whose `Origin` is not the server's own gets a 403 before anything is read or changed. Otherwise any
  page a user visits could read the server's chatflows and conversations, or create a chatflow with
  a "simple" `text/plain` POST that needs no preflight. Requests without an `Origin` (curl, the SDKs,
  the Streamlit app) and the server's own chat page are not affected.

A chatflow may narrow that: `chatbotConfig.allowedOrigins` lists the sites (`https://shop.example`)
its chat widget may be embedded in; empty, missing, or a first entry of "" means any site. Sites are
compared by host and port, as Flowise compares `new URL(origin).host`. A request whose `Origin` is
not listed gets a 403 with `chatbotConfig.allowedOriginsError` (or Flowise's default text) before
anything else happens: Flowise's error JSON, or, for a streaming prediction, that text alone as
`text/plain`, as Flowise sends it. A request without an `Origin` (curl, the SDKs), or from the
server's own origin (its chat page), is never refused.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from streamwise.api.errors import error_response
from streamwise.settings import Settings
from streamwise.store import ChatflowRecord

DEFAULT_REFUSAL = "This site is not allowed to access this chatbot"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


# The routes the chat widget (flowise-embed) calls from other sites.
WIDGET_ROUTES = re.compile(
    r"^/api/v1/(?:predictions?/|chatflows-streaming/|chatmessage/abort/|public-chatbotConfig/|feedback(?:/|$)"
    r"|runs/)"
)
CROSS_SITE_REFUSAL = "This route does not answer requests from other sites"


class BrowserPolicy:
    """CORS on the widget's routes; a 403 for other sites' browser requests to every other route."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        origins = list(settings.cors_origins)
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"] if "*" in origins else origins,
            allow_methods=["*"],
            allow_headers=["*"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if WIDGET_ROUTES.match(scope["path"]):
            await self.cors(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        cross_site = origin is not None and not same_site(
            origin.decode("latin-1"), headers.get(b"host", b"").decode("latin-1")
        )
        # A browser names the relation even where it sends no Origin (a GET from a link or an image).
        if cross_site or headers.get(b"sec-fetch-site") == b"cross-site":
            await error_response(403, CROSS_SITE_REFUSAL)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def same_site(origin: str, host: str) -> bool:
    """Whether a browser's `Origin` is the server's own, as the request's `Host` header names it."""
    own = url_host(origin)
    if own is None or not host:
        return False
    scheme = urlsplit(origin.strip()).scheme
    served = url_host(f"{scheme}://{host.strip()}")  # the same normalisation: case, default port
    return served is not None and served == own


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(BrowserPolicy, settings=settings)


def chatbot_config(raw: str | None) -> dict[str, Any]:
    """A chatflow's stored `chatbotConfig` JSON text as an object; anything else counts as none."""
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def url_host(url: str) -> str | None:
    """`host[:port]` of a URL the way JavaScript's `new URL(url).host` gives it (default port left
    out, lower case); None when it has no scheme and host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    hostname = parts.hostname
    if not parts.scheme or not hostname:
        return None
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host += f":{port}"
    return host


def origin_allowed(config: dict[str, Any], origin: str | None) -> bool:
    """Whether a request from `origin` may use a chatflow with this chatbotConfig."""
    if not origin:
        return True
    allowed = config.get("allowedOrigins")
    if not isinstance(allowed, list) or not allowed or allowed[0] == "":
        return True
    host = url_host(origin)
    if host is None:
        return False
    return any(isinstance(site, str) and url_host(site) == host for site in allowed)


def refusal_message(config: dict[str, Any]) -> str:
    message = config.get("allowedOriginsError")
    return message if isinstance(message, str) and message else DEFAULT_REFUSAL


def refuse_origin(request: Request, record: ChatflowRecord, *, streaming: bool = False) -> Response | None:
    """The 403 for a request from a site the chatflow does not allow; None when it may go on."""
    origin = request.headers.get("origin")
    if not origin or same_site(origin, request.headers.get("host", "")):
        return None  # curl, the SDKs, and the server's own chat page
    config = chatbot_config(record.chatbotConfig)
    if origin_allowed(config, origin):
        return None
    message = refusal_message(config)
    if streaming:
        return PlainTextResponse(message, status_code=403)
    return error_response(403, message)

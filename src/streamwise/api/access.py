"""Who may call each route: every route declares one `Access` level, and its guard runs first.

    OPEN         nobody needs a key: ping, the chat page's assets, the streaming check, the widget's
                 public config (they say nothing a chatflow's id does not already give away)
    FLOW         the chatflow's own key when it is bound to one (`apikeyid`), else nobody's:
                 prediction, abort, the chat page, posting feedback
    MANAGE       a valid key when the server needs keys (`streamwise.security.policy`): chatflows,
                 API keys, credentials
    MANAGE_FLOW  both: a valid key when the server needs keys, and the chatflow's own key when it is
                 bound: its chat history, vector upsert, feedback list

A refusal is a 401 with Flowise's error JSON before the route reads its body or writes a byte, on
streaming requests too. A key comes as `Authorization: Bearer <key>` (what Flowise's SDKs send) or as
the password of HTTP Basic authentication (what a browser sends after asking for it on the chat page
of a bound chatflow).

`check_routes` refuses to start an app with a route that declares no level, so none is forgotten.
Routes whose chatflow is named in the body (feedback) declare `FLOW` with no path parameter and call
`authorize_flow` themselves once they know it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from streamwise.api.state import AppState, app_state
from streamwise.errors import RateLimited, Unauthorized
from streamwise.security.keys import bearer_token
from streamwise.security.policy import needs_keys
from streamwise.store import ChatflowRecord


class Access(enum.Enum):
    OPEN = "open"
    FLOW = "flow"
    MANAGE = "manage"
    MANAGE_FLOW = "manage+flow"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is, for limits: the API key it presented, else the client's address."""

    key_id: str | None
    who: str


class Guard:
    """The dependency a route declares; FastAPI runs it before anything reads the body."""

    def __init__(self, level: Access, chatflow_param: str | None = None, *, limited: bool = False) -> None:
        self.level = level
        self.chatflow_param = chatflow_param
        self.limited = limited  # the chatflow's rate limit applies (prediction, upsert)

    async def __call__(self, request: Request) -> None:
        state = app_state(request)
        if self.level is Access.OPEN:
            return
        key_id = await presented_key_id(state, request)
        record: ChatflowRecord | None = None
        if self.chatflow_param is not None:
            chatflow_id = request.path_params.get(self.chatflow_param)
            if isinstance(chatflow_id, str):
                cached = await state.chatflow_cache.get(chatflow_id)
                record = None if cached is None else cached.record
        # The chatflow's own key first: its refusal lets a browser ask for the key (see `_refusal`).
        if record is not None:
            _require_bound_key(request, record, key_id)
        if (
            self.level in (Access.MANAGE, Access.MANAGE_FLOW)
            and key_id is None
            and needs_keys(state.settings.auth, state.settings.host, await state.keys.any_keys())
        ):
            raise _refusal(request, "Unauthorized: this route needs a valid API key")
        principal = Principal(key_id, key_id or client_of(state, request))
        request.state.principal = principal
        if self.limited and record is not None:
            await check_rate(state, record, principal)


def guard(level: Access, chatflow_param: str | None = None, *, limited: bool = False) -> Any:
    """`dependencies=[guard(...)]` on a route."""
    return Depends(Guard(level, chatflow_param, limited=limited))


def _require_bound_key(request: Request, record: ChatflowRecord, key_id: str | None) -> None:
    if record.apikeyid and record.apikeyid != key_id:
        raise _refusal(request, f"Unauthorized: chatflow {record.id} needs its API key", ask_browser=True)


async def authorize_flow(request: Request, state: AppState, record: ChatflowRecord) -> None:
    """For routes that learn their chatflow from the body: its key, when it is bound to one."""
    if record.apikeyid:
        _require_bound_key(request, record, await presented_key_id(state, request))


def presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    token = bearer_token(authorization)
    if token is not None:
        return token
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


async def presented_key_id(state: AppState, request: Request) -> str | None:
    """The id of the valid key the request carries. A key that is not valid counts as none (as
    Flowise ignores a key an open chatflow does not need); where one is needed, the refusal says so."""
    if hasattr(request.state, "key_id"):
        cached: str | None = request.state.key_id
        return cached
    key = presented_key(request)
    record = None if key is None else await state.keys.identify(key)
    key_id = None if record is None else record.id
    request.state.key_id = key_id
    request.state.key_refused = key is not None and record is None
    return key_id


def _refusal(request: Request, message: str, *, ask_browser: bool = False) -> Unauthorized:
    """`ask_browser`: the refusal invites HTTP Basic, so a browser asks its user for the key, and then
    sends it with the chat page's own requests. Only a bound chatflow's refusal does: a management
    route's would make the chat page of an unbound chatflow pop a login box for its history."""
    if getattr(request.state, "key_refused", False):
        message = f"{message} (the key sent is not valid)"
    return Unauthorized(message, ask_browser=ask_browser)


def client_of(state: AppState, request: Request) -> str:
    peer = request.client.host if request.client else None
    return state.proxies.client_address(peer, request.headers.get("x-forwarded-for"))


async def check_rate(state: AppState, record: ChatflowRecord, principal: Principal) -> None:
    limit = state.rate_limit_for(record)
    if limit is None:
        return
    retry_after = await state.rate_limiter.hit(record.id, principal.who, limit)
    if retry_after is not None:
        raise RateLimited(limit.message, retry_after=max(1, math.ceil(retry_after)))


def access_of(route: APIRoute) -> Guard | None:
    """The guard a route declares (None if it declares none)."""
    guards = [dep.dependency for dep in route.dependencies if isinstance(dep.dependency, Guard)]
    return guards[0] if len(guards) == 1 else None


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route of the app, through included routers (which newer FastAPI keeps lazily)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    found = [context.original_route for context in contexts(app.routes)] if contexts else app.routes
    return [route for route in found if isinstance(route, APIRoute)]


def check_routes(app: FastAPI) -> None:
    """Refuse an app with a route that declares no access level (or more than one)."""
    routes = api_routes(app)
    if not routes:
        raise RuntimeError("no API routes found to check")
    missing = [f"{sorted(route.methods or ())} {route.path}" for route in routes if access_of(route) is None]
    if missing:
        raise RuntimeError(f"routes without exactly one access guard: {', '.join(missing)}")

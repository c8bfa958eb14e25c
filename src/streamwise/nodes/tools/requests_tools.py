"""requestsGet and requestsPost: the model sends an HTTP request and reads the answer.

These follow Flowise 3.x (node version 2.0): the URL, headers, tool name and description come from
the node; the model fills in query parameters (GET, shaped by `requestsGetQueryParamsSchema`) or a
JSON body (POST, shaped by `requestsPostBodySchema`). A node of version 1.0 carries the older
input names (`url`, `headers`, `description`, `body`) and often no URL, in which case the model was
the one to choose it: both sets of names are read, and with no URL in the node the model gives one
in a `url` argument. An answer that is not 2xx is a failure naming the status, as in Flowise.

Every request goes through `net_guard`, on every redirect hop (followed here, at most
`MAX_REDIRECTS`): only http(s), only allowed hosts, no private addresses unless the settings allow
them, and the connection goes to the address that was vetted. The answer is read as a stream and
cut at `ToolPolicy.max_response_bytes` (a compressed answer is inflated to that size at most), and
the whole call, redirects included, gets `ToolPolicy.timeout_seconds`.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpcore2
import httpx2

from streamwise.engine.tools import TOOL_NAME, ToolContext, ToolFailure, ToolResult, ToolSchema
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.services import NodeServices, ToolPolicy
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.tools.net_guard import NetGuard, Resolve, guarded_client, read_text

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Credentials that must not follow a redirect to another origin (httpx and browsers drop them too).
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array"})


@dataclass(frozen=True)
class _Kind:
    """What differs between the two nodes. `node` also starts Flowise 3.x input names (requestsGetUrl)."""

    node: str
    label: str
    method: str
    name: str
    description: str
    schema_input: str  # the fields schema's Flowise 1.x-style name; "<node>QueryParamsSchema" in 3.x
    fixed: tuple[str, ...]  # inputs that decide where requests go and with which secrets


GET = _Kind(
    "requestsGet",
    "Requests Get",
    "GET",
    "requests_get",
    "Use this when you need to send a GET request to read data from a website or web API.",
    "queryParamsSchema",
    ("url", "requestsGetUrl", "headers", "requestsGetHeaders"),
)
POST = _Kind(
    "requestsPost",
    "Requests Post",
    "POST",
    "requests_post",
    "Use this when you need to send a POST request to create or update something on a website or web API.",
    "bodySchema",
    ("url", "requestsPostUrl", "headers", "requestsPostHeaders", "body", "requestPostBody"),
)


@dataclass
class HttpRequestTool:
    """One requestsGet or requestsPost node. `resolve` and `backend` may be replaced (tests give a
    table of names and a socket layer of their own); by default the system resolver and sockets."""

    kind: _Kind
    policy: ToolPolicy
    name: str
    description: str
    url: str | None
    headers: Mapping[str, str]
    fields: Mapping[str, Mapping[str, Any]] | None = None  # the query params or body schema, if any
    body: Mapping[str, Any] = field(default_factory=dict)
    max_output: int | None = None
    resolve: Resolve | None = None
    backend: httpcore2.AsyncNetworkBackend | None = None

    def __post_init__(self) -> None:
        self._schema = ToolSchema(name=self.name, description=self.description, parameters=self._parameters())

    @property
    def schema(self) -> ToolSchema:
        return self._schema

    @property
    def side_effects(self) -> bool:
        return self.kind.method != "GET"

    def _parameters(self) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        if not self.url:
            properties["url"] = {
                "type": "string",
                "description": f"The full URL to {self.kind.method}, starting with https:// or http://",
            }
            required.append("url")
        get = self.kind.method == "GET"
        argument = "queryParams" if get else "body"
        if self.fields:
            shape: dict[str, Any] = {
                "type": "object",
                "description": "Query parameters for the request" if get else "Request body parameters",
                "properties": {key: _field_schema(config) for key, config in self.fields.items()},
            }
            needed = [key for key, config in self.fields.items() if config.get("required")]
            if needed:
                shape["required"] = needed
            if not get:
                required.append("body")
        elif get:
            shape = {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Optional query parameters to include in the request",
            }
        else:
            shape = {"type": "object", "description": "Optional body data to include in the request"}
        properties[argument] = shape
        return {"type": "object", "properties": properties} | ({"required": required} if required else {})

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        seconds = self.policy.timeout_seconds
        try:
            url = self._target(arguments)
            content = self._content(arguments)
            async with asyncio.timeout(seconds):
                text = await self._fetch(url, content)
        except TimeoutError:
            raise self._failure(f"no complete answer within {seconds:g} seconds") from None
        except ToolFailure as exc:
            raise self._failure(exc.message, exc.detail) from None
        return ToolResult(text[: self.max_output] if self.max_output else text)

    def _failure(self, reason: str, detail: str | None = None) -> ToolFailure:
        return ToolFailure(f"Failed to make {self.kind.method} request: {reason}", detail=detail)

    def _target(self, arguments: Mapping[str, Any]) -> str:
        url = self.url or arguments.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ToolFailure("give the URL in 'url'")
        url = url.strip()
        params = arguments.get("queryParams") if self.kind.method == "GET" else None
        if not params:
            return url
        if not isinstance(params, Mapping):
            raise ToolFailure("'queryParams' must be an object")
        query: list[tuple[str, str]] = []
        for key, value in params.items():
            config = self.fields.get(key) if self.fields is not None else {}
            if config is None or value is None:  # with a schema, Flowise sends only the keys it names
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            if config.get("in") == "path":
                url = _with_path_param(url, str(key), text)
            else:
                query.append((str(key), text))
        if not query:
            return url
        try:
            parsed = httpx2.URL(url)
            for key, text in query:
                parsed = parsed.copy_add_param(key, text)
        except (httpx2.InvalidURL, TypeError, ValueError):
            raise ToolFailure("that URL is not valid") from None
        return str(parsed)

    def _content(self, arguments: Mapping[str, Any]) -> bytes | None:
        if self.kind.method == "GET":
            return None
        given = arguments.get("body", arguments.get("data"))  # "data": what Flowise 1.x asked for
        if isinstance(given, str):
            try:
                given = json.loads(given) if given.strip() else None
            except ValueError:
                raise ToolFailure("'body' must be a JSON object") from None
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise ToolFailure("'body' must be a JSON object")
        # The node's own body wins over what the model wrote, as Flowise's input description says.
        return json.dumps({**given, **self.body}).encode()

    async def _fetch(self, url: str, content: bytes | None) -> str:
        guard = NetGuard(self.policy, resolve=self.resolve)
        method = self.kind.method
        headers = httpx2.Headers({"Accept-Encoding": "gzip, deflate"})
        if content is not None:
            headers["Content-Type"] = "application/json"
        headers.update(self.headers)
        current: str | httpx2.URL = url
        async with guarded_client(guard, inner=self.backend, timeout=None) as client:
            for hop in range(MAX_REDIRECTS + 1):
                try:
                    target = await guard.check_url(current)
                except ToolFailure as exc:
                    raise ToolFailure(f"a redirect was refused: {exc}" if hop else exc.message) from None
                try:
                    request = client.build_request(method, target, headers=headers, content=content)
                    response = await client.send(request, stream=True)
                    try:
                        redirect = response.status_code in _REDIRECTS
                        location = response.headers.get("location") if redirect else None
                        if not location:
                            return await _answer(response, self.policy.max_response_bytes)
                    finally:
                        await response.aclose()
                except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
                    raise _transport_failure(exc, self.policy.timeout_seconds) from None
                if hop == MAX_REDIRECTS:
                    raise ToolFailure(f"more than {MAX_REDIRECTS} redirects")
                try:
                    current = target.join(location)
                except (httpx2.InvalidURL, TypeError, ValueError):
                    raise ToolFailure("the server sent a redirect that cannot be followed") from None
                status = response.status_code
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, content = "GET", None  # what browsers do, and Flowise's secureFetch
                    headers.pop("content-type", None)
                if _origin(current) != _origin(target):
                    for name in _CREDENTIAL_HEADERS:
                        headers.pop(name, None)
        raise ToolFailure(f"more than {MAX_REDIRECTS} redirects")  # not reached: the loop returns or raises


def _transport_failure(exc: Exception, seconds: float) -> ToolFailure:
    if isinstance(exc, httpx2.TimeoutException):
        return ToolFailure(f"no complete answer within {seconds:g} seconds")
    if isinstance(exc, httpx2.ConnectError):
        return ToolFailure("could not connect to the host", detail=repr(exc))
    return ToolFailure(f"the request failed ({type(exc).__name__})", detail=repr(exc))


def _origin(url: httpx2.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host, url.port


def _with_path_param(url: str, key: str, value: str) -> str:
    """Flowise's path parameters: `:key` in the URL is replaced, else the value is appended."""
    encoded = quote(value, safe="")
    placeholder = re.compile(rf":{re.escape(key)}\b")
    if placeholder.search(url):
        return placeholder.sub(lambda _: encoded, url)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + encoded))


async def _answer(response: httpx2.Response, limit: int) -> str:
    """The text of a 2xx answer, at most `limit` bytes of it; ToolFailure for any other status."""
    if not response.is_success:
        reason = "".join(ch for ch in response.reason_phrase if ch.isprintable())[:80]
        raise ToolFailure(f"HTTP Error {response.status_code}: {reason}".rstrip(": "))
    return await read_text(response, limit)


def _field_schema(config: Mapping[str, Any]) -> dict[str, Any]:
    kind = config.get("type")
    schema: dict[str, Any] = {"type": kind if kind in _JSON_TYPES else "string"}
    if isinstance(config.get("description"), str):
        schema["description"] = config["description"]
    return schema


def _plain(text: str) -> str:
    """Text the Flowise editor may have wrapped in HTML (`<p>https://...</p>`), without the tags."""
    return html.unescape(re.sub(r"<[^>]*>", "", text)).strip()


def _first(inputs_: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = inputs_.get(key)
        if value is not None and value != "":
            return value
    return None


def _json_object(value: Any, key: str, node_id: str, *, strip_html: bool) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = _plain(value) if strip_html else value.strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            try:  # trailing commas, which Flowise's lenient parser takes
                value = json.loads(re.sub(r",(\s*[}\]])", r"\1", text))
            except ValueError as exc:
                raise NodeConfigError(
                    f"Node {node_id}: invalid JSON in input {key!r}: {exc}", node_id
                ) from None
    if not isinstance(value, dict):
        raise NodeConfigError(f"Node {node_id}: input {key!r} must be a JSON object", node_id)
    return value


def _headers(value: Any, key: str, node_id: str) -> dict[str, str]:
    parsed = _json_object(value, key, node_id, strip_html=True) or {}
    headers: dict[str, str] = {}
    for name, raw in parsed.items():
        text = raw if isinstance(raw, str) else json.dumps(raw)
        if not _HEADER_NAME.match(str(name)) or any(ch in text for ch in "\r\n\0"):
            raise NodeConfigError(f"Node {node_id}: input {key!r} has an invalid header {name!r}", node_id)
        headers[str(name)] = text
    return headers


def _fields(value: Any, key: str, node_id: str) -> dict[str, dict[str, Any]] | None:
    parsed = _json_object(value, key, node_id, strip_html=True)
    if not parsed:
        return None
    if not all(isinstance(config, dict) for config in parsed.values()):
        raise NodeConfigError(f"Node {node_id}: each entry of input {key!r} must be a JSON object", node_id)
    return parsed


def _tool_name(raw: Any, default: str) -> str:
    """Flowise's rule: lower case, spaces to underscores, other characters dropped."""
    name = re.sub(r"[^a-z0-9_-]", "", str(raw or "").lower().replace(" ", "_"))[:64]
    return name if TOOL_NAME.match(name) else default


def _build(kind: _Kind, node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> HttpRequestTool:
    p = kind.node
    url_input = _first(inputs_, "url", f"{p}Url")
    url = _plain(str(url_input)) if url_input is not None else None
    if url:
        try:
            scheme = httpx2.URL(url).scheme
        except (httpx2.InvalidURL, TypeError, ValueError):
            scheme = ""
        if scheme not in ("http", "https"):
            raise NodeConfigError(f"Node {node_id}: input 'url' must be an http:// or https:// URL", node_id)
    max_key = "maxOutputLength" if _first(inputs_, "maxOutputLength") is not None else f"{p}MaxOutputLength"
    max_output = inputs.integer(inputs_, max_key, node_id)
    if max_output is not None and max_output < 1:
        raise NodeConfigError(f"Node {node_id}: input {max_key!r} must be a positive whole number", node_id)
    description = _first(inputs_, "description", f"{p}Description")
    schema_key = p + kind.schema_input[0].upper() + kind.schema_input[1:]
    body = _first(inputs_, "body", "requestPostBody") if kind.method == "POST" else None
    return HttpRequestTool(
        kind,
        services.tools,
        name=_tool_name(_first(inputs_, "name", f"{p}Name"), kind.name),
        description=str(description).strip() if description else kind.description,
        url=url or None,
        headers=_headers(_first(inputs_, "headers", f"{p}Headers"), f"{p}Headers", node_id),
        fields=_fields(_first(inputs_, kind.schema_input, schema_key), schema_key, node_id),
        body=_json_object(body, "body", node_id, strip_html=False) or {},
        max_output=max_output,
    )


def build_get(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> HttpRequestTool:
    return _build(GET, node_id, inputs_, services)


def build_post(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> HttpRequestTool:
    return _build(POST, node_id, inputs_, services)


def _spec(kind: _Kind, build: Any) -> NodeSpec:
    schema = kind.schema_input[0].upper() + kind.schema_input[1:]
    named = ("Name", "Description", schema, "MaxOutputLength")
    return NodeSpec(
        name=kind.node,
        label=kind.label,
        category="Tools",
        build=build,
        honoured=(
            *(*kind.fixed, "name", "description", kind.schema_input, "maxOutputLength"),
            *(kind.node + suffix for suffix in named),
        ),
        # Where requests go and with which secrets: not for a request's overrideConfig to change.
        protected=frozenset(kind.fixed),
    )


GET_SPEC = _spec(GET, build_get)
POST_SPEC = _spec(POST, build_post)
SPECS = (GET_SPEC, POST_SPEC)

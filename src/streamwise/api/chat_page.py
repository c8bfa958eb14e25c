"""GET /chatbot/{id}: a chat page for one chatflow (Flowise's share-link path), and its two assets.

The page is static HTML with the chatflow's `chatbotConfig` rendered into a JSON script tag (escaped so
no text can close the tag), one script and one stylesheet from `/chatbot-assets/`. The Content-Security-
Policy lets the page load and call only this server: no inline script, no CDN, no external request.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from streamwise.api.access import Access, guard
from streamwise.api.cors import chatbot_config, refuse_origin
from streamwise.api.state import State
from streamwise.chat_page import STATIC_DIR
from streamwise.wire.errors import error_body

router = APIRouter()

ASSET_PREFIX = "/chatbot-assets"

# Only this server: scripts and styles from files (never inline), fetches to the API, no frames,
# no forms posting elsewhere, no plugins. `data:` images cover the blank favicon.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ASSET_NAMES = ("chat.js", "chat.css")
_PLACEHOLDER = re.compile(r"\{\{(page_title|config_json|css_href|js_src)\}\}")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def asset(name: str) -> Asset:
    body = (STATIC_DIR / name).read_bytes()
    suffix = name[name.rindex(".") :]
    return Asset(body, _MEDIA_TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


@cache
def _template() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


def script_json(value: Any) -> str:
    """JSON safe inside `<script type="application/json">`: no `<`, `>` or `&` survives (so neither
    `</script>` nor `<!--` can appear), nor the line separators older parsers choke on."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


_CSP_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?"
)


def frame_ancestors(config: dict[str, Any], server_origins: list[str]) -> str:
    """Which sites may show the page in a frame: the chatflow's `allowedOrigins` when it lists some,
    else the server's `STREAMWISE_CORS_ORIGINS` (`*`: any). Entries that are not plain origins are
    dropped, so stored text can never add a directive to the policy."""
    allowed = config.get("allowedOrigins")
    if isinstance(allowed, list) and allowed and allowed[0] != "":
        sites = [site.rstrip("/") for site in allowed if isinstance(site, str)]
    elif "*" in server_origins:
        return "*"
    else:
        sites = list(server_origins)
    return " ".join(["'self'", *(site for site in sites if _CSP_ORIGIN.fullmatch(site))])


def render_page(chatflow_id: str, name: str, config: dict[str, Any]) -> str:
    title = config.get("title")
    page_title = title if isinstance(title, str) and title.strip() else name
    data = {"chatflowId": chatflow_id, "name": name, "chatbotConfig": config}
    version = {asset_name: asset(asset_name).etag.strip('"')[:10] for asset_name in ASSET_NAMES}
    values = {
        "page_title": html.escape(page_title),
        "config_json": script_json(data),
        "css_href": f"{ASSET_PREFIX}/chat.css?v={version['chat.css']}",
        "js_src": f"{ASSET_PREFIX}/chat.js?v={version['chat.js']}",
    }
    # One pass, so a value that happens to hold "{{...}}" is never substituted again.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], _template())


def _not_found_page(chatflow_id: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Chatflow not found</title>'
        '<link rel="icon" href="data:,"></head><body><h1>Chatflow not found</h1>'
        f"<p>There is no chatflow {html.escape(chatflow_id)} on this server.</p></body></html>"
    )


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept


@router.get(
    "/chatbot/{chatflow_id}",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=[guard(Access.FLOW, "chatflow_id")],
)
async def chat_page(chatflow_id: str, request: Request, state: State) -> Response:
    record = await state.chatflows.get(chatflow_id)
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    if record is not None:
        refused = refuse_origin(request, record)  # a script on a refused site fetching the page
        if refused is not None:
            return refused
        config = chatbot_config(record.chatbotConfig)
        ancestors = frame_ancestors(config, state.settings.cors_origins)
        headers["Content-Security-Policy"] = f"{CONTENT_SECURITY_POLICY}; frame-ancestors {ancestors}"
    if record is None:
        message = f"Chatflow {chatflow_id} not found"
        if _wants_html(request):
            return HTMLResponse(_not_found_page(chatflow_id), status_code=404, headers=headers)
        return JSONResponse(error_body(404, message), status_code=404, headers=headers)
    page = render_page(record.id, record.name, config)
    return HTMLResponse(page, headers=headers)


@router.get(ASSET_PREFIX + "/{name}", include_in_schema=False, dependencies=[guard(Access.OPEN)])
async def chat_asset(name: str, request: Request) -> Response:
    if name not in ASSET_NAMES:
        return JSONResponse(error_body(404, f"No asset {name}"), status_code=404)
    found = asset(name)
    # The page links each file with its hash in the query, so a changed file is a new URL; a day's
    # caching (and revalidation by ETag) is safe either way.
    headers = {
        **SECURITY_HEADERS,
        "Cache-Control": "public, max-age=86400",
        "ETag": found.etag,
    }
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)

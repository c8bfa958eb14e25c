"""Reading request bodies within the configured size limit and deadline, whatever their encoding.

A body larger than the limit gets 413; one that does not arrive in time (a slow sender, or one that
declared more bytes than it sends) gets 408 and the connection is closed; one whose sender hangs up
halfway gets 400.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from streamwise import jsontext
from streamwise.errors import BadRequest, BodyTimeout, BodyTooLarge, LengthRequired
from streamwise.wire.requests import decode_body, form_fields


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    timeout_seconds: float


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"Request body is larger than the limit of {limit} bytes")


def _too_slow(limits: BodyLimits) -> BodyTimeout:
    return BodyTimeout(f"The request body did not arrive within {limits.timeout_seconds:g} s")


def _declared_size(request: Request, limit: int) -> int | None:
    """The Content-Length, if given; refused at once when it is over the limit."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return None
    if int(declared) > limit:
        raise _too_large(limit)
    return int(declared)


async def read_limited(request: Request, limits: BodyLimits) -> bytes:
    _declared_size(request, limits.max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            async for chunk in request.stream():  # a sender may lie about (or omit) its length
                size += len(chunk)
                if size > limits.max_bytes:
                    raise _too_large(limits.max_bytes)
                chunks.append(chunk)
    except TimeoutError:
        raise _too_slow(limits) from None
    except ClientDisconnect:
        raise BadRequest("The client hung up before the request body was complete") from None
    return b"".join(chunks)


async def read_fields(request: Request, limits: BodyLimits) -> Mapping[str, Any]:
    """JSON, form-urlencoded or multipart body → fields (files in multipart are set aside)."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.lower().startswith("multipart/form-data"):
        if _declared_size(request, limits.max_bytes) is None:
            raise LengthRequired("A multipart request needs a Content-Length header")
        try:
            async with asyncio.timeout(limits.timeout_seconds):
                form = await request.form()
        except TimeoutError:
            raise _too_slow(limits) from None
        except ClientDisconnect:
            raise BadRequest("The client hung up before the request body was complete") from None
        except Exception as exc:
            raise BadRequest(f"Malformed multipart body: {exc}") from None
        return form_fields(
            (key, value) for key, value in form.multi_items() if not isinstance(value, UploadFile)
        )
    return await _decode(await read_limited(request, limits), content_type)


async def read_json_object(request: Request, limits: BodyLimits) -> dict[str, Any]:
    body = await read_limited(request, limits)
    return dict(await _decode(body, request.headers.get("content-type", "")))


async def _decode(body: bytes, content_type: str) -> Mapping[str, Any]:
    """Big bodies are parsed in a worker thread, so other streams keep flowing meanwhile."""
    if len(body) > jsontext.OFFLOAD_BYTES:
        return await asyncio.to_thread(decode_body, body, content_type)
    return decode_body(body, content_type)

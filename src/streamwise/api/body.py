"""Reading request bodies within the configured size limit, whatever their encoding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from streamwise.api.errors import ApiError
from streamwise.wire.requests import BadRequest, decode_body


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body is larger than the limit of {limit} bytes")


def _declared_size(request: Request, limit: int) -> int | None:
    """The Content-Length, if given; refused at once when it is over the limit."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return None
    if int(declared) > limit:
        raise _too_large(limit)
    return int(declared)


async def read_limited(request: Request, limit: int) -> bytes:
    _declared_size(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # a sender may lie about (or omit) its length
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_fields(request: Request, limit: int) -> Mapping[str, Any]:
    """JSON, form-urlencoded or multipart body → fields (files in multipart are set aside)."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.lower().startswith("multipart/form-data"):
        if _declared_size(request, limit) is None:
            raise ApiError(411, "A multipart request needs a Content-Length header")
        try:
            form = await request.form()
        except Exception as exc:
            raise BadRequest(f"Malformed multipart body: {exc}") from None
        return {key: value for key, value in form.multi_items() if not isinstance(value, UploadFile)}
    return decode_body(await read_limited(request, limit), content_type)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    fields = decode_body(await read_limited(request, limit), request.headers.get("content-type", ""))
    return dict(fields)

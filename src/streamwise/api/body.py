"""Reading request bodies within the configured size limit, whatever their encoding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from streamwise.api.errors import ApiError
from streamwise.wire.requests import BadRequest, decode_body


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"Request body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"Request body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_fields(request: Request, limit: int) -> Mapping[str, Any]:
    """JSON, form-urlencoded or multipart body → fields (files in multipart are set aside)."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.lower().startswith("multipart/form-data"):
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit():
            raise ApiError(411, "A multipart request needs a Content-Length header")
        if int(declared) > limit:
            raise ApiError(413, f"Request body is larger than the limit of {limit} bytes")
        try:
            form = await request.form()
        except Exception as exc:
            raise BadRequest(f"Malformed multipart body: {exc}") from None
        return {key: value for key, value in form.multi_items() if not isinstance(value, UploadFile)}
    return decode_body(await read_limited(request, limit), content_type)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    fields = decode_body(await read_limited(request, limit), request.headers.get("content-type", ""))
    return dict(fields)

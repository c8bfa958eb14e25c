"""POST /api/v1/vector/upsert/{id}: load documents into a chatflow's vector store(s), as Flowise does.

A JSON body gives the loaders' inputs through `overrideConfig` (a plain text loader's `text`, a
data-URL file); a multipart body brings `files`, each handed to the loaders that take its type.
Uploads are saved to a private directory under the data directory for the length of the request and
deleted after. The answer is Flowise's: `{"numAdded", "numUpdated", "numSkipped", "numDeleted",
"addedDocs"}`.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from streamwise.api.access import Access, guard
from streamwise.api.body import BodyLimits, read_json_object
from streamwise.api.credential_inputs import credential_inputs
from streamwise.api.flows import load_chatflow
from streamwise.api.state import State
from streamwise.engine import indexing
from streamwise.engine.overrides import OverridePolicy
from streamwise.engine.retrieval import RetrievalContext, UploadedFile
from streamwise.errors import BadRequest, BodyTimeout, BodyTooLarge, LengthRequired
from streamwise.wire.requests import parse_override_config

router = APIRouter()

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_FILES = 100


@router.post(
    "/api/v1/vector/upsert/{chatflow_id}",
    response_model=None,
    dependencies=[guard(Access.MANAGE_FLOW, "chatflow_id", limited=True)],
)
async def upsert(chatflow_id: str, request: Request, state: State) -> Response:
    chatflow = await load_chatflow(state, chatflow_id)
    limits = BodyLimits(state.settings.max_upload_bytes, state.settings.body_timeout_seconds)
    content_type = request.headers.get("content-type", "application/json").lower()
    async with _uploads(state.settings.data_dir) as folder:
        if content_type.startswith("multipart/form-data"):
            fields, files = await _multipart(request, limits, folder)
        else:
            fields, files = await read_json_object(request, state.body_limits), []
        override = parse_override_config(fields.get("overrideConfig"))
        stop = fields.get("stopNodeId")
        if stop is not None and not isinstance(stop, str):
            raise BadRequest("Field 'stopNodeId' must be a string")
        targets = indexing.plan(
            chatflow.prepared,
            state.registry,
            override=override,
            override_policy=OverridePolicy.from_api_config(chatflow.record.apiConfig),
            inject=await credential_inputs(chatflow.prepared, state.credentials),
            files=files,
            stop_node_id=stop or None,
        )
        result = await indexing.run(targets, RetrievalContext(chatflow_id), state.records)
    # Streamed from the spill file (read in a worker thread): the answer lists every chunk added, and
    # for a big upload it is as big as the upload.
    return StreamingResponse(
        iterate_in_threadpool(result.body()),
        media_type="application/json",
        background=BackgroundTask(result.added.close),
    )


@asynccontextmanager
async def _uploads(data_dir: Path) -> Any:
    root = data_dir / "uploads"
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=root))
    try:
        yield folder
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def _multipart(
    request: Request, limits: BodyLimits, folder: Path
) -> tuple[dict[str, Any], list[UploadedFile]]:
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise LengthRequired("A multipart request needs a Content-Length header")
    if int(declared) > limits.max_bytes:
        raise BodyTooLarge(f"Request body is larger than the limit of {limits.max_bytes} bytes")
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            form = await request.form(max_files=MAX_FILES, max_fields=100)
    except TimeoutError:
        raise BodyTimeout(f"The request body did not arrive within {limits.timeout_seconds:g} s") from None
    except ClientDisconnect:
        raise BadRequest("The client hung up before the request body was complete") from None
    except Exception as exc:
        raise BadRequest(f"Malformed multipart body: {exc}") from None
    fields: dict[str, Any] = {}
    files: list[UploadedFile] = []
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.append(await _save(value, folder))
            elif key == "files":
                continue  # a text part, not a file: nothing to index
            else:
                fields[key] = value
    finally:
        await form.close()
    return fields, files


async def _save(upload: UploadFile, folder: Path) -> UploadedFile:
    """Copy one upload into the request's folder under a safe name (the original name is kept for
    the documents' `source`)."""
    name = _clean_name(upload.filename or "upload")
    target = folder / f"{uuid.uuid4().hex[:8]}-{name}"

    def copy() -> None:
        upload.file.seek(0)
        with target.open("wb") as out:
            shutil.copyfileobj(upload.file, out, 1024 * 1024)

    await asyncio.to_thread(copy)
    return UploadedFile(name=name, path=target, media_type=upload.content_type)


def _clean_name(name: str) -> str:
    """The last path component, with anything unusual replaced: never a way out of the folder."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .") or "upload"
    return cleaned[:200]

"""GET /api/v1/public-chatbotConfig/{id}: what the flowise-embed widget reads before it opens.

Flowise's shape: the chatflow's `chatbotConfig` object, spread out, plus `uploads`, what the chat may
be sent besides text. Streamwise's predictions take text only, so every upload is off.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from streamwise.api.access import Access, guard
from streamwise.api.cors import chatbot_config, refuse_origin
from streamwise.api.state import State
from streamwise.errors import NotFound

router = APIRouter()

NO_UPLOADS: dict[str, Any] = {
    "isSpeechToTextEnabled": False,
    "isImageUploadAllowed": False,
    "isRAGFileUploadAllowed": False,
    "imgUploadSizeAndTypes": [],
    "fileUploadSizeAndTypes": [],
}


@router.get(
    "/api/v1/public-chatbotConfig/{chatflow_id}", response_model=None, dependencies=[guard(Access.OPEN)]
)
async def public_chatbot_config(chatflow_id: str, request: Request, state: State) -> Response:
    record = await state.chatflows.get(chatflow_id)
    if record is None:
        raise NotFound(f"Chatflow {chatflow_id} not found")
    refused = refuse_origin(request, record)
    if refused is not None:
        return refused
    uploads = {name: list(value) if isinstance(value, list) else value for name, value in NO_UPLOADS.items()}
    return JSONResponse({**chatbot_config(record.chatbotConfig), "uploads": uploads})

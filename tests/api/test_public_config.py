"""GET /api/v1/public-chatbotConfig/{id}: the chatbotConfig, spread, plus `uploads`."""

from __future__ import annotations

import json

import httpx

from tests.api.helpers import create_flow
from tests.support.flows import fake_flow

NO_UPLOADS = {
    "isSpeechToTextEnabled": False,
    "isImageUploadAllowed": False,
    "isRAGFileUploadAllowed": False,
    "imgUploadSizeAndTypes": [],
    "fileUploadSizeAndTypes": [],
}


async def test_the_config_and_uploads(client: httpx.AsyncClient) -> None:
    chatflow_id = await create_flow(client, fake_flow(tokens=["Hi"]))
    bare = await client.get(f"/api/v1/public-chatbotConfig/{chatflow_id}")
    assert bare.status_code == 200
    assert bare.json() == {"uploads": NO_UPLOADS}
    config = {"welcomeMessage": "Hello!", "chatFeedback": {"status": True}, "allowedOrigins": []}
    await client.put(f"/api/v1/chatflows/{chatflow_id}", json={"chatbotConfig": json.dumps(config)})
    response = await client.get(f"/api/v1/public-chatbotConfig/{chatflow_id}")
    assert response.json() == {**config, "uploads": NO_UPLOADS}


async def test_an_unknown_chatflow_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/public-chatbotConfig/nope")
    assert response.status_code == 404
    assert response.json()["message"] == "Chatflow nope not found"

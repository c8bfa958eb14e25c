"""The real `flowise` package from PyPI (1.0.4), unchanged, against a live server."""

from __future__ import annotations

import json

from flowise import Flowise, IMessage, PredictionData

from tests.support.flows import fake_flow
from tests.support.server import LiveServer


def test_streaming_chunks_arrive_as_json_strings_token_by_token(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["Why", " did", " the", " chicken", "?"]))
    client = Flowise(base_url=server.base_url)
    chunks = list(
        client.create_prediction(
            PredictionData(chatflowId=chatflow_id, question="Tell me a joke!", streaming=True)
        )
    )
    events = [json.loads(chunk) for chunk in chunks]
    names = [event["event"] for event in events]
    assert names[0] == "start" and names[-2:] == ["metadata", "end"]
    tokens = [event["data"] for event in events if event["event"] == "token"]
    assert tokens == ["Why", " did", " the", " chicken", "?"]


def test_non_streaming_yields_one_flowise_json_response(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(memory="bufferMemory", tokens=["Hi"]))
    client = Flowise(base_url=server.base_url)
    [response] = list(client.create_prediction(PredictionData(chatflowId=chatflow_id, question="Hello")))
    assert response["text"] == "Hi" and response["question"] == "Hello"
    assert response["memoryType"] == "Buffer Memory" and response["chatMessageId"]


def test_history_and_chat_id_sent_by_the_sdk_are_honoured(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(memory="bufferMemory", echo=True))
    client = Flowise(base_url=server.base_url)
    data = PredictionData(
        chatflowId=chatflow_id,
        question="What is my name?",
        chatId="sdk-chat",
        streaming=True,
        history=[IMessage(message="My name is Ada.", type="userMessage")],
    )
    events = [json.loads(chunk) for chunk in client.create_prediction(data)]
    text = "".join(event["data"] for event in events if event["event"] == "token")
    assert "user: My name is Ada." in text
    metadata = next(event["data"] for event in events if event["event"] == "metadata")
    assert metadata["chatId"] == "sdk-chat"

"""The whole app on PostgreSQL (STREAMWISE_DATABASE_URL=postgresql://...): import, stream, remember."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.settings import Settings
from tests.api.helpers import create_flow, stream
from tests.support.flows import fake_flow
from tests.support.pg import PostgresUnavailable, postgres_test_database
from tests.support.sse import check_invariant


async def test_conversation_on_postgresql(settings: Settings, services: NodeServices) -> None:
    async with contextlib.AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(postgres_test_database())
        except PostgresUnavailable as exc:
            pytest.skip(f"PostgreSQL unreachable at 127.0.0.1:5432: {exc}")
        app = create_app(settings.model_copy(update={"database_url": url}), services)
        async with app.router.lifespan_context(app):
            assert app.state.streamwise.database.dialect == "postgresql"
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", timeout=30
            ) as client:
                chatflow_id = await create_flow(client, fake_flow(memory="bufferMemory", echo=True))
                await stream(client, chatflow_id, {"question": "I am Ada.", "chatId": "pg"})
                text = check_invariant(
                    await stream(client, chatflow_id, {"question": "Who?", "chatId": "pg"})
                )
                assert "user: I am Ada." in text
                messages = (await client.get(f"/api/v1/chatmessage/{chatflow_id}")).json()
                assert [m["role"] for m in messages] == ["userMessage", "apiMessage"] * 2
                assert (await client.delete(f"/api/v1/chatflows/{chatflow_id}")).status_code == 200

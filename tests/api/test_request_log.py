"""One log line per request: method, path, status, duration, run id."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from tests.api.helpers import create_flow, stream
from tests.support.flows import fake_flow

LINE = re.compile(r"^(GET|POST|PUT|OPTIONS) (\S+) (\d{3}) \d+\.\dms( run=[0-9a-f-]{36})?$")


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "streamwise.http"]


async def test_each_request_leaves_one_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamwise.http")
    chatflow_id = await create_flow(client, fake_flow(tokens=["Hi"]))
    await stream(client, chatflow_id, {"question": "Hello"})
    await client.get("/api/v1/chatflows/missing")
    await client.options(
        "/api/v1/prediction/x",
        headers={"Origin": "https://a.example", "Access-Control-Request-Method": "POST"},
    )
    lines = _lines(caplog)
    assert len(lines) == 4, lines
    assert all(LINE.match(line) for line in lines), lines
    assert lines[0].startswith("POST /api/v1/chatflows 200 ")
    assert lines[1].startswith(f"POST /api/v1/prediction/{chatflow_id} 200 ") and " run=" in lines[1]
    assert lines[2].startswith("GET /api/v1/chatflows/missing 404 ")
    assert lines[3].startswith("OPTIONS /api/v1/prediction/x 200 ")


async def test_a_failing_request_leaves_a_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="streamwise.http")
    state = client._transport.app.state.streamwise  # type: ignore[attr-defined]

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(state.chatflows, "list", broken)
    transport = httpx.ASGITransport(app=client._transport.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        response = await http.get("/api/v1/chatflows")
    assert response.status_code == 500
    assert [line for line in _lines(caplog) if line.startswith("GET /api/v1/chatflows 500 ")]

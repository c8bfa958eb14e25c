"""The Host header: a server on loopback answers to loopback names only (DNS rebinding), and a page on
another site cannot use the management routes even in open mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from streamwise.app import create_app
from streamwise.nodes.services import NodeServices
from streamwise.security.policy import HostRule, host_name, is_loopback
from streamwise.settings import Settings


async def _get(settings: Settings, path: str, headers: dict[str, str]) -> httpx.Response:
    app = create_app(settings, NodeServices(env={}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            return await client.get(path, headers=headers)


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path, seed=False, preload_local_model=False, **extra)


@pytest.mark.parametrize(
    "host",
    ["attacker.example", "attacker.example:3000", "localhost.attacker.example", "127.0.0.1.nip.io", "0"],
)
async def test_a_rebound_name_is_refused_with_json_before_any_route(tmp_path: Path, host: str) -> None:
    answer = await _get(_settings(tmp_path), "/api/v1/chatflows", {"Host": host})
    assert answer.status_code == 400
    assert "does not answer to that host name" in answer.json()["message"]


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:3000", "127.0.0.1:3000", "[::1]:3000", "app.localhost"]
)
async def test_loopback_names_are_answered(tmp_path: Path, host: str) -> None:
    assert (await _get(_settings(tmp_path), "/api/v1/chatflows", {"Host": host})).status_code == 200


async def test_allowed_hosts_names_the_hosts_and_wildcard_domains(tmp_path: Path) -> None:
    settings = _settings(tmp_path, allowed_hosts=["flows.example.com", "*.internal.example"])
    for host, status in (
        ("flows.example.com", 200),
        ("a.internal.example:8443", 200),
        ("internal.example", 400),
        ("localhost", 400),
    ):
        assert (await _get(settings, "/api/v1/ping", {"Host": host})).status_code == status, host


async def test_a_server_beyond_loopback_answers_any_name_since_its_keys_guard_it(tmp_path: Path) -> None:
    answer = await _get(_settings(tmp_path, host="0.0.0.0"), "/api/v1/ping", {"Host": "flows.example.com"})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://attacker.example", "Content-Type": "text/plain"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_other_sites_cannot_use_the_management_routes_in_open_mode(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    settings = _settings(tmp_path)
    app = create_app(settings, NodeServices(env={}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=30) as client:
            created = await client.post(
                "/api/v1/chatflows", content=b'{"name": "x", "flowData": "{}"}', headers=headers
            )
            assert created.status_code == 403
            assert (await client.get("/api/v1/chatflows")).json() == []


def test_policy_helpers() -> None:
    assert host_name("[::1]:3000") == "::1" and host_name("Example.COM:80") == "example.com"
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert HostRule.for_server(["*"], "127.0.0.1").allows("anything")
    assert not HostRule.for_server([], "127.0.0.1").allows("evil.example")

"""The documentation stays true to the code: every node and honoured input, every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamwise.chat_ui import SERVER_ENV
from streamwise.nodes.catalog import BUILTINS
from streamwise.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# Environment variables of the test suite and of the chat app, not of the server's settings.
NOT_SETTINGS = {"STREAMWISE_TEST_POSTGRES", SERVER_ENV}


def test_every_registered_node_and_honoured_input_is_documented() -> None:
    nodes_md = (ROOT / "docs" / "nodes.md").read_text()
    for spec in BUILTINS:
        section = nodes_md.split(f"### `{spec.name}`", 1)
        assert len(section) == 2, f"docs/nodes.md has no section for {spec.name}"
        body = section[1].split("\n### ", 1)[0]
        for name in (*spec.honoured, *spec.ignored):
            assert f"`{name}`" in body, f"docs/nodes.md does not mention {spec.name}.{name}"


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`STREAMWISE_{name.upper()}`" in readme, name


def test_every_setting_the_docs_name_exists() -> None:
    fields = {f"STREAMWISE_{name.upper()}" for name in Settings.model_fields}
    for path in [ROOT / "README.md", ROOT / "compose.yaml", *sorted((ROOT / "docs").glob("*.md"))]:
        named = set(re.findall(r"STREAMWISE_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
        assert named - fields - NOT_SETTINGS == set(), path.name


def test_compose_runs_two_api_nodes_and_two_workers_on_postgres_and_redis() -> None:
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    commands = {name: service.get("command", []) for name, service in services.items()}
    assert sorted(name for name, command in commands.items() if command[:2] == ["streamwise", "worker"]) == [
        "worker-1",
        "worker-2",
    ]
    api = [
        name for name, command in commands.items() if command[:4] == ["streamwise", "start", "--role", "api"]
    ]
    assert sorted(api) == ["api-1", "api-2"]
    for name in (*api, "worker-1", "worker-2"):
        environment = services[name]["environment"]
        assert environment["STREAMWISE_DATABASE_URL"].startswith("postgresql://"), name
        assert environment["STREAMWISE_REDIS_URL"].startswith("redis://redis:"), name
    assert {"postgres", "redis"} <= set(services)

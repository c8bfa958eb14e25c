"""Flowise "customTool" (Custom Tool): refused. Its function is JavaScript that Flowise runs in a
sandbox; Streamwise runs no user code, so a chatflow with one is refused when it is saved, with a
message that names the node and says what to use instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Never

from streamwise.errors import NodeConfigError
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> Never:
    raise NodeConfigError(
        f"Node {node_id} (Custom Tool): its function is JavaScript, and Streamwise runs no user code. "
        "Use requestsGet/requestsPost to call an HTTP service, or customMCP to call an MCP server's tools",
        node_id,
    )


SPEC = NodeSpec(
    name="customTool",
    label="Custom Tool",
    category="Tools",
    build=build,
    ignored=(
        "selectedTool",
        "returnDirect",
        "customToolName",
        "customToolDesc",
        "customToolSchema",
        "customToolFunc",
    ),
)

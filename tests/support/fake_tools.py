"""Scripted tool nodes for tests (not in the package; added with STREAMWISE_NODE_MODULES).

- `fakeTool`: named by its `name` input; answers `output` (default: "<name> got <arguments JSON>"),
  after `delayMs`; `fail` "tool" raises a ToolFailure with that text, "crash" raises RuntimeError;
  `sources` (a JSON list of texts) come back as the call's passages. Every call is counted in
  `CALLS[name]`, and `RUNNING[name]` says how many are in progress (for cancellation tests).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamwise.engine.tools import ToolContext, ToolFailure, ToolResult, ToolSchema
from streamwise.nodes import inputs as read
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

CALLS: Counter[str] = Counter()
RUNNING: Counter[str] = Counter()
CANCELLED: Counter[str] = Counter()

PARAMETERS = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "what to work on"}},
}


@dataclass(frozen=True)
class FakeTool:
    schema: ToolSchema
    output: str | None
    delay: float
    fail: str | None
    sources: tuple[str, ...]
    side_effects: bool = False

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        name = self.schema.name
        CALLS[name] += 1
        RUNNING[name] += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            CANCELLED[name] += 1
            raise
        finally:
            RUNNING[name] -= 1
        if self.fail == "crash":
            raise RuntimeError("the fake tool crashed with a secret: /etc/secret-path")
        if self.fail:
            raise ToolFailure(self.fail)
        output = (
            self.output
            if self.output is not None
            else f"{name} got {json.dumps(dict(arguments), sort_keys=True)}"
        )
        documents = tuple(
            {"pageContent": text, "metadata": {"source": f"{name}-{i}"}}
            for i, text in enumerate(self.sources)
        )
        return ToolResult(output, documents)


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> FakeTool:
    raw_sources = inputs.get("sources") or []
    sources = json.loads(raw_sources) if isinstance(raw_sources, str) else raw_sources
    return FakeTool(
        ToolSchema(
            read.text(inputs, "name", "fake") or "fake",
            read.text(inputs, "description", "A fake tool") or "",
            PARAMETERS,
        ),
        output=read.text(inputs, "output"),
        delay=(read.number(inputs, "delayMs", node_id, 0) or 0) / 1000,
        fail=read.text(inputs, "fail"),
        sources=tuple(str(text) for text in sources),
    )


SPEC = NodeSpec(
    name="fakeTool",
    label="Fake Tool",
    category="Tools",
    build=build,
    honoured=("name", "description", "output", "delayMs", "fail", "sources"),
)

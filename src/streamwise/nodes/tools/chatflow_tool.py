"""Flowise "chatflowTool" (Chatflow Tool; "ChatflowTool" in some Flowise releases): another chatflow
of this server, offered to an agent as a tool.

The model calls it with `input`, the question (a `customInput` or `useQuestionFromChat` replaces
it, as in Flowise). The other chatflow runs in this process (`NodeServices.chatflows`), never over
HTTP to the server itself; its answer is the tool's output, and its sources join the call's. As in
Flowise, the question goes to the calling chat's session, unless `startNewSession` asks for a fresh
one per call. A chatflow may not call itself; chains of chatflows calling each other are bounded.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamwise.engine.tools import ChatflowCaller, ToolContext, ToolFailure, ToolResult, ToolSchema
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs as read
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.tools.retriever_tool import MAX_QUERY_CHARS, tool_name

PARAMETERS = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "input question"}},
    "required": ["input"],
}


@dataclass(frozen=True)
class ChatflowTool:
    schema: ToolSchema
    chatflow_id: str
    caller: ChatflowCaller | None
    custom_input: str | None
    question_from_chat: bool
    new_session: bool
    side_effects: bool = True  # the other chatflow may call tools of its own

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        if self.caller is None:
            raise ToolFailure("this server cannot run other chatflows here")
        if self.chatflow_id == context.session.chatflow_id:
            raise ToolFailure("a chatflow cannot call itself")
        question = arguments.get("input")
        if self.question_from_chat:
            question = context.question
        elif self.custom_input:
            question = self.custom_input
        if not isinstance(question, str) or not question.strip():
            raise ToolFailure("'input' must be the question to ask")
        if len(question) > MAX_QUERY_CHARS:
            raise ToolFailure(f"'input' is longer than {MAX_QUERY_CHARS:,} characters")
        chat_id = str(uuid.uuid4()) if self.new_session else context.session.chat_id
        answer = await self.caller.ask(self.chatflow_id, question, chat_id=chat_id)
        return ToolResult(answer.text, answer.sources)


def build(node_id: str, inputs: Mapping[str, Any], services: NodeServices) -> ChatflowTool:
    chatflow_id = read.text(inputs, "selectedChatflow")
    if not chatflow_id:
        raise NodeConfigError(f"Node {node_id}: input 'selectedChatflow' must name a chatflow", node_id)
    name = tool_name(inputs, node_id, "chatflow_tool")
    description = read.text(inputs, "description") or "Execute another chatflow"
    return ChatflowTool(
        ToolSchema(name, description, PARAMETERS),
        chatflow_id,
        services.chatflows,
        custom_input=read.text(inputs, "customInput"),
        question_from_chat=read.flag(inputs, "useQuestionFromChat", False),
        new_session=read.flag(inputs, "startNewSession", False),
    )


_HONOURED = (
    "selectedChatflow",
    "name",
    "description",
    "customInput",
    "useQuestionFromChat",
    "startNewSession",
)
_IGNORED = ("credential", "returnDirect", "overrideConfig", "baseURL")
# Which chatflow is asked is the author's choice: a request may not point the tool at another one.
_PROTECTED = frozenset({"selectedChatflow"})
SPEC = NodeSpec(
    name="chatflowTool",
    label="Chatflow Tool",
    category="Tools",
    build=build,
    honoured=_HONOURED,
    ignored=_IGNORED,
    protected=_PROTECTED,
)
# The same node under the name some Flowise releases export.
LEGACY_SPEC = NodeSpec(
    name="ChatflowTool",
    label="Chatflow Tool",
    category="Tools",
    build=build,
    honoured=_HONOURED,
    ignored=_IGNORED,
    protected=_PROTECTED,
)

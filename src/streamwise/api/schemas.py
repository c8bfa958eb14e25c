"""The API's bodies as pydantic models, for the OpenAPI document only: nothing validates with them.

The routes read their bodies by hand (three encodings, and Flowise clients' lenient field types), so
these models restate what those readers accept (`streamwise.wire.requests`, `streamwise.api.chatflows`,
`streamwise.api.chatmessages`) and what the records' `to_json` send back. A schema allows nothing its
reader refuses, and refuses only spellings its reader tolerates but nobody should rely on (such as
objects as JSON text inside JSON); tests/api/test_openapi.py holds the two together.

Bounds that come from settings are marked with `LIMIT` and filled in from the running configuration.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from streamwise.api.chatflows import CHATFLOW_ID, MAX_NAME_CHARS
from streamwise.api.chatmessages import CHAT_TYPES
from streamwise.engine.events import EventName
from streamwise.engine.ports import ExchangeStatus
from streamwise.seed import seed_flow_data
from streamwise.wire.requests import MAX_ID_CHARS, WHOLE_NUMBERS, RequestLimits

# The key naming which `RequestLimits` field bounds a schema's maxLength or maxItems.
LIMIT = "x-streamwise-limit"
DEFAULTS = RequestLimits()

ROLES = ("apiMessage", "userMessage", "assistant", "user")
# What `str.strip()` removes, spelled out: the readers strip, and a pattern's \s means something else.
_SPACE = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_BLANK = f"^[{_SPACE}]*$"  # a blank text field counts as absent
_NOT_BLANK = f"[^{_SPACE}]"
_CHAT_TYPE = "(" + "|".join(CHAT_TYPES) + ")"
_WS = "[ \\t\\n\\r]*"  # JSON's whitespace
# One chat type, or a JSON list (or JSON string) of them, as Flowise's UI sends it.
_CHAT_TYPES = (
    f'^({_CHAT_TYPE}|{_WS}"{_CHAT_TYPE}"{_WS}'
    f'|{_WS}\\[{_WS}("{_CHAT_TYPE}"({_WS},{_WS}"{_CHAT_TYPE}")*)?{_WS}\\]{_WS})?$'
)
# `.strip().lower()` of the form field: any letter case, surrounding whitespace allowed.
_STREAMING_TEXT = f"^[{_SPACE}]*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])?[{_SPACE}]*$"

Blank = Annotated[str, StringConstraints(pattern=_BLANK)]
MessageText = Annotated[
    str, Field(max_length=DEFAULTS.max_message_chars, json_schema_extra={LIMIT: "max_message_chars"})
]
Identifier = Annotated[str, Field(max_length=MAX_ID_CHARS)]
WholeNumber = Annotated[int, Field(ge=WHOLE_NUMBERS.start, le=WHOLE_NUMBERS.stop - 1)]
ChatflowId = Annotated[str, Field(pattern=f"^{CHATFLOW_ID.pattern}$", examples=["3f1c9a7e-chatflow"])]
ChatflowType = Literal["CHATFLOW", "AGENTFLOW", "MULTIAGENT", "ASSISTANT"]
Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, examples=["2024-01-31T10:00:00.000Z"])
]
JsonText = Annotated[str, Field(description="JSON text, as stored")]
# For a field that may be left out but not sent as null.
Absent = SkipJsonSchema[None]


class Open(BaseModel):
    """A body whose unknown fields are ignored, as Flowise's clients send extra ones."""

    model_config = ConfigDict(extra="allow")


# --- /api/v1/prediction ---------------------------------------------------------------------------


def _limited_text() -> dict[str, Any]:
    return {"type": "string", "maxLength": DEFAULTS.max_message_chars, LIMIT: "max_message_chars"}


def _role_or_empty(schema: dict[str, Any]) -> None:
    # Any empty value, as the reader tests it (`role or type`), hands over to `type`.
    schema["anyOf"] = [
        {"enum": list(ROLES)},
        {"enum": [None, False, 0, ""]},
        {"type": "array", "maxItems": 0},
        {"type": "object", "maxProperties": 0},
    ]


def _turn_rules(schema: dict[str, Any]) -> None:
    # The reader takes `type` when `role` is empty and `message` when `content` is null.
    schema["allOf"] = [
        {
            "anyOf": [
                {"required": ["role"], "properties": {"role": {"enum": list(ROLES)}}},
                {"required": ["type"], "properties": {"type": {"enum": list(ROLES)}}},
            ]
        },
        {
            "anyOf": [
                {"required": ["content"], "properties": {"content": {"type": "string"}}},
                {"required": ["message"], "properties": {"message": _limited_text()}},
            ]
        },
    ]


class HistoryTurn(Open):
    """One earlier turn. The Python SDK sends `{"message", "type", "role": null, "content": null}`."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_turn_rules)

    role: Any = Field(
        None,
        description='Who spoke; when empty (null, "", false, 0, [] or {}), `type` says.',
        json_schema_extra=_role_or_empty,
    )
    type: Any = Field(None, description="Read when `role` is empty: the same values.")
    content: MessageText | None = Field(None, description="What was said; when null, `message` says.")
    message: Any = Field(None, description="Read when `content` is null: the text.")


class OverrideConfig(Open):
    """Per-request node inputs (`{"temperature": 0.1}`, or keyed by node id), and the session."""

    sessionId: Any = Field(
        None,
        description="The memory session (default: the chatId): a string or a number.",
        json_schema_extra={"maxLength": MAX_ID_CHARS},
    )


Streaming = bool | Annotated[str, StringConstraints(pattern=_STREAMING_TEXT)]
ChatId = Identifier | WholeNumber
History = Annotated[
    list[HistoryTurn],
    Field(max_length=DEFAULTS.max_history_turns, json_schema_extra={LIMIT: "max_history_turns"}),
]
_STREAMING = "Answer as Server-Sent Events (when the chatflow can stream)."
_CHAT_ID = "Continue this chat; empty starts a new one."
_HISTORY = "Earlier turns to answer with, oldest first (when memory holds none)."
_DETACH = (
    "Keep the run going if the client hangs up, so that it can resume it (Last-Event-ID); "
    "by default hanging up stops the run."
)


class PredictionForm(Open):
    """What POST /api/v1/prediction/{id} reads from a form, where every field is text: `streaming` is
    "true" or "false", `overrideConfig` and `history` are JSON text. A field may be given once."""

    question: MessageText = Field(min_length=1, pattern=_NOT_BLANK, description="Not blank.")
    streaming: Streaming | Absent = Field(None, description=_STREAMING)
    chatId: ChatId | Absent = Field(None, description=_CHAT_ID)
    overrideConfig: OverrideConfig | Blank | None = None
    history: History | Blank | None = Field(None, description=_HISTORY)
    detach: Streaming | Absent = Field(None, description=_DETACH)


class PredictionBody(PredictionForm):
    """What POST /api/v1/prediction/{id} reads from JSON; `overrideConfig` and `history` may also come
    as JSON text, as in a form."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"question": "Hey, how are you?"},
                {
                    "question": "And what did I say first?",
                    "streaming": True,
                    "chatId": "chat-1",
                    "overrideConfig": {"sessionId": "session-1", "temperature": 0.2},
                    "history": [
                        {"role": "userMessage", "content": "Hi, I am Ada."},
                        {"role": "apiMessage", "content": "Hello Ada!"},
                    ],
                },
            ]
        }
    )

    streaming: Streaming | None = Field(None, description=_STREAMING)
    chatId: ChatId | None = Field(None, description=_CHAT_ID)
    detach: Streaming | None = Field(None, description=_DETACH)


class SourceDocument(BaseModel):
    pageContent: str
    metadata: dict[str, Any]


class PredictionResult(BaseModel):
    text: str
    chatId: str
    chatMessageId: str
    question: str
    sessionId: str | Absent = Field(None, description="Sent when the chatflow has memory.")
    memoryType: str | Absent = Field(None, description="Sent when the chatflow has memory.")
    aborted: Literal[True] | Absent = Field(None, description="Sent when the run was aborted.")
    sourceDocuments: list[SourceDocument] | Absent = Field(
        None, description="The passages the answer drew on, when the chain returns them."
    )


class StreamFrame(BaseModel):
    """One run event, the JSON of a stream event's `data`: start, token..., then metadata (or abort,
    or error), then end."""

    event: EventName
    data: Any


class StreamEvent(BaseModel):
    """One Server-Sent Event of a streaming prediction. Flowise writes `message:` then `data:`, so
    each is a default ("message") event; silent streams also get `:heartbeat` comments."""

    event: Literal["message"]
    data: str = Field(
        json_schema_extra={
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/StreamFrame"},
        }
    )


class StreamingCheck(BaseModel):
    isStreaming: bool


# --- /api/v1/chatflows ----------------------------------------------------------------------------


class FlowGraph(Open):
    """A Flowise graph, as the canvas exports it; it must be one that can run."""

    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


FlowData = Annotated[str, StringConstraints(pattern=_NOT_BLANK)] | FlowGraph
JsonConfig = dict[str, Any] | list[Any] | Blank | None


class ChatflowChanges(Open):
    """The fields PUT may change; a field left out is kept."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Support bot", "deployed": True}]})

    name: Annotated[str, Field(max_length=MAX_NAME_CHARS)] | Absent = None
    flowData: FlowData | Absent = Field(
        None, description="The graph, or its JSON text. It is checked as a prediction would run it."
    )
    deployed: bool | None = None
    isPublic: bool | None = None
    apikeyid: str | None = Field(
        None,
        description="Bind the chatflow to this API key's id (its prediction, history, upsert and chat "
        "page then need the key); empty or null: bound to none. An id of no key is a 400.",
    )
    chatbotConfig: JsonConfig = Field(None, description="An object, or its JSON text.")
    apiConfig: JsonConfig = Field(None, description="An object, or its JSON text.")
    analytic: str | None = None
    speechToText: str | None = None
    followUpPrompts: str | None = None
    category: str | None = None
    type: ChatflowType | None = Field(None, description="Null keeps the current type.")


class ChatflowCreate(ChatflowChanges):
    """A new chatflow: `name` and `flowData` are required."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "support-bot", "name": "Support bot", "flowData": json.loads(seed_flow_data())}
            ]
        }
    )

    id: ChatflowId | Literal[""] | None = Field(None, description="Chosen id; default: a new UUID.")
    name: Annotated[str, Field(max_length=MAX_NAME_CHARS)]
    flowData: FlowData = Field(description="The graph, or its JSON text. It must be able to run.")


class Chatflow(BaseModel):
    id: str
    name: str
    flowData: JsonText
    deployed: bool | None
    isPublic: bool | None
    apikeyid: str | None
    chatbotConfig: JsonText | None
    apiConfig: JsonText | None
    analytic: str | None
    speechToText: str | None
    followUpPrompts: str | None
    category: str | None
    type: str
    createdDate: Timestamp
    updatedDate: Timestamp


class UpsertForm(Open):
    """What POST /api/v1/vector/upsert/{id} reads from a multipart form (`overrideConfig` as JSON text)."""

    overrideConfig: OverrideConfig | Blank | None = Field(
        None, description="Inputs of the loaders (and other nodes), as for a prediction."
    )
    stopNodeId: str | None = Field(None, description="Upsert into this vector store node only.")
    # Untyped on purpose: a schema cannot say "a file part" in a way every client generator honours;
    # text parts named `files` are ignored.
    files: Any = Field(
        None,
        description="Documents to index (file parts); each goes to the loaders that take its type.",
        json_schema_extra={"items": {"type": "string", "contentMediaType": "application/octet-stream"}},
    )


class UpsertBody(Open):
    """What POST /api/v1/vector/upsert/{id} reads from JSON (`overrideConfig` may be JSON text too)."""

    overrideConfig: OverrideConfig | Blank | None = Field(
        None, description="Inputs of the loaders (and other nodes), as for a prediction."
    )
    stopNodeId: str | None = Field(None, description="Upsert into this vector store node only.")


class UpsertResult(BaseModel):
    numAdded: int = Field(ge=0)
    numUpdated: int = Field(ge=0)
    numSkipped: int = Field(ge=0)
    numDeleted: int = Field(ge=0)
    addedDocs: list[SourceDocument]


class Deleted(BaseModel):
    raw: list[Any] = Field(max_length=0)
    affected: int = Field(ge=0)


# --- /api/v1/chatmessage --------------------------------------------------------------------------


_DATE_FILTER = "Inclusive; a bare date is the whole day, a time without an offset is UTC."


class MessageQuery(BaseModel):
    """The filters of GET and DELETE /api/v1/chatmessage/{id}: not a body, its fields document the
    query parameters."""

    chatId: str | Absent = None
    sessionId: str | Absent = None
    memoryType: str | Absent = None
    messageId: str | Absent = None
    chatType: Annotated[str, StringConstraints(pattern=_CHAT_TYPES)] | Absent = Field(
        None, description='EXTERNAL, INTERNAL, or a JSON list of them: ["EXTERNAL","INTERNAL"].'
    )
    startDate: date | datetime | Absent = Field(None, description=_DATE_FILTER)
    endDate: date | datetime | Absent = Field(None, description=_DATE_FILTER)
    order: Annotated[str, StringConstraints(pattern=r"^([Aa][Ss][Cc]|[Dd][Ee][Ss][Cc])?$")] | Absent = Field(
        None, description="ASC (default) or DESC, by date (GET only); any letter case."
    )


class ChatMessage(BaseModel):
    id: str
    role: Literal["userMessage", "apiMessage"]
    chatflowid: str
    content: str
    sourceDocuments: Any = Field(description="Parsed from the stored JSON text (kept as text if not JSON).")
    usedTools: Any
    fileAnnotations: Any
    agentReasoning: Any
    fileUploads: Any
    artifacts: Any
    action: Any
    chatType: str
    chatId: str
    memoryType: str | None
    sessionId: str | None
    createdDate: Timestamp
    leadEmail: str | None
    followUpPrompts: str | None
    status: ExchangeStatus = Field(description="Whether the answer is complete, or how it ended short.")
    runId: str | None


class Aborted(BaseModel):
    status: Literal[200]
    message: str
    aborted: int = Field(ge=0, description="How many running predictions of the chat were stopped.")


# --- /api/v1/public-chatbotConfig and /api/v1/feedback ------------------------------------------


class UploadsConfig(BaseModel):
    isSpeechToTextEnabled: bool
    isImageUploadAllowed: bool
    isRAGFileUploadAllowed: bool
    imgUploadSizeAndTypes: list[Any]
    fileUploadSizeAndTypes: list[Any]


class PublicChatbotConfig(Open):
    """The chatflow's chatbotConfig object, spread out, with what the chat may be sent besides text."""

    uploads: UploadsConfig = Field(description="Uploads the chat takes: none, Streamwise answers text.")


Rating = Literal["THUMBS_UP", "THUMBS_DOWN"]
FeedbackText = Annotated[str, Field(max_length=10_000)]


class FeedbackCreate(Open):
    """What POST /api/v1/feedback reads; chatflowid and chatId default to the message's own."""

    messageId: Annotated[str, StringConstraints(min_length=1)] = Field(description="The rated answer.")
    chatflowid: str | Absent = Field(None, description="Must be the message's chatflow when given.")
    chatId: str | Absent = Field(None, description="Must be the message's chat when given.")
    rating: Rating | Literal[""] | Absent = None
    content: FeedbackText | Absent = Field(None, description="A comment.")


class FeedbackChanges(Open):
    """What PUT /api/v1/feedback/{id} reads."""

    rating: Rating | Literal[""] | Absent = None
    content: FeedbackText | Absent = Field(None, description="A comment.")
    messageId: str | Absent = Field(None, description="Must be the feedback's own when given.")
    chatflowid: str | Absent = Field(None, description="Must be the feedback's own when given.")
    chatId: str | Absent = Field(None, description="Must be the feedback's own when given.")


class Feedback(BaseModel):
    id: str
    chatflowid: str
    chatId: str
    messageId: str
    rating: Rating | None
    content: str | None
    createdDate: Timestamp


class FeedbackQuery(BaseModel):
    """The filters of GET /api/v1/feedback/{id}: not a body, its fields document the query."""

    chatId: str | Absent = None
    startDate: date | datetime | Absent = Field(None, description=_DATE_FILTER)
    endDate: date | datetime | Absent = Field(None, description=_DATE_FILTER)
    order: Annotated[str, StringConstraints(pattern=r"^([Aa][Ss][Cc]|[Dd][Ee][Ss][Cc])?$")] | Absent = Field(
        None, description="ASC (default) or DESC, by date; any letter case."
    )
    sortOrder: Annotated[str, StringConstraints(pattern=r"^([Aa][Ss][Cc]|[Dd][Ee][Ss][Cc])?$")] | Absent = (
        Field(None, description="The same as `order` (which wins).")
    )


class FeedbackUpdated(BaseModel):
    status: Literal["OK"]


# --- every route ----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Flowise's error JSON, sent with every failure status."""

    statusCode: int
    success: Literal[False]
    message: str
    stack: dict[str, Any] = Field(description="Always empty.", json_schema_extra={"maxProperties": 0})


class HealthCheck(BaseModel):
    ok: bool
    ms: float | Absent = Field(None, description="How long the check took, when it answered.")


class RateLimitStoreCheck(BaseModel):
    kind: Literal["memory", "redis"]
    ok: bool


class HealthReport(BaseModel):
    """GET /api/v1/health: 200 when every check passed, else 503 with the same body."""

    status: Literal["ok", "degraded"]
    database: HealthCheck
    rateLimitStore: RateLimitStoreCheck
    runs: int = Field(ge=0, description="Answers running in this process.")
    draining: bool = Field(description="The server is shutting down and takes no new runs.")

"""The tables Streamwise keeps: two shaped like Flowise's so its data and clients feel at home,
and one of live server processes.

Column names are Flowise's camelCase ones, so a row maps onto the wire JSON one to one.

`chat_message.chatflowid` has no foreign key, as in Flowise: the engine may store an exchange for a
chatflow it was handed directly (tests, embedded use), and SQLite would only honour a cascade with a
per-connection pragma. `ChatflowRepository.delete` removes a chatflow's messages in the same
transaction instead.

The migration in `migrations/versions` creates exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from streamwise.store.dates import as_utc

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps the offset (`timestamptz`); SQLite has no such type, so values are stored as
    naive UTC text, which still sorts and compares correctly, and get their UTC zone back on read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ChatFlow(Base):
    __tablename__ = "chat_flow"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String())
    flowData: Mapped[str] = mapped_column(Text)
    deployed: Mapped[bool | None] = mapped_column(Boolean)
    isPublic: Mapped[bool | None] = mapped_column(Boolean)
    apikeyid: Mapped[str | None] = mapped_column(String())
    chatbotConfig: Mapped[str | None] = mapped_column(Text)
    apiConfig: Mapped[str | None] = mapped_column(Text)
    analytic: Mapped[str | None] = mapped_column(Text)
    speechToText: Mapped[str | None] = mapped_column(Text)
    followUpPrompts: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(20), default="CHATFLOW", server_default="CHATFLOW")
    createdDate: Mapped[datetime] = mapped_column(UTCDateTime())
    updatedDate: Mapped[datetime] = mapped_column(UTCDateTime())


class ChatMessage(Base):
    __tablename__ = "chat_message"
    # Memory reads one session of one chatflow in date order; this index serves that read outright,
    # and its leading column also serves every lookup by chatflow alone.
    __table_args__ = (
        Index("ix_chat_message_chatflowid_sessionId_createdDate", "chatflowid", "sessionId", "createdDate"),
        # Recovery looks for exchanges left running; few rows ever are.
        Index("ix_chat_message_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    chatflowid: Mapped[str] = mapped_column(String(36))
    content: Mapped[str] = mapped_column(Text)
    sourceDocuments: Mapped[str | None] = mapped_column(Text)
    usedTools: Mapped[str | None] = mapped_column(Text)
    fileAnnotations: Mapped[str | None] = mapped_column(Text)
    agentReasoning: Mapped[str | None] = mapped_column(Text)
    fileUploads: Mapped[str | None] = mapped_column(Text)
    artifacts: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(Text)
    chatType: Mapped[str] = mapped_column(String(20), default="INTERNAL", server_default="INTERNAL")
    chatId: Mapped[str] = mapped_column(String(), index=True)
    memoryType: Mapped[str | None] = mapped_column(String())
    sessionId: Mapped[str | None] = mapped_column(String(), index=True)
    createdDate: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    leadEmail: Mapped[str | None] = mapped_column(Text)
    followUpPrompts: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="complete", server_default="complete")
    runId: Mapped[str | None] = mapped_column(String(), index=True)
    # The server process running the exchange, while it runs (see ServerInstance).
    instanceId: Mapped[str | None] = mapped_column(String(36))


class ServerInstance(Base):
    """A live server process: it renews `heartbeatDate` while it runs and removes its row on exit.

    Exchanges still "running" whose process has no fresh heartbeat (or, on the same host, whose pid is
    gone) were cut off by a crash; recovery marks them "interrupted".
    """

    __tablename__ = "server_instance"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String())
    pid: Mapped[int] = mapped_column(Integer)
    startedDate: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeatDate: Mapped[datetime] = mapped_column(UTCDateTime())


class UpsertRecord(Base):
    """What was indexed into a vector store: one row per chunk, keyed by the hash of its content and
    metadata, so that upserting the same content again adds nothing, and a changed source can have its
    old chunks removed (the record manager's cleanup modes)."""

    __tablename__ = "upsert_record"
    __table_args__ = (Index("ix_upsert_record_namespace_source", "namespace", "source"),)

    namespace: Mapped[str] = mapped_column(String(), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str | None] = mapped_column(String())
    createdDate: Mapped[datetime] = mapped_column(UTCDateTime())


class ChatMessageFeedback(Base):
    """A thumbs up or down (and an optional comment) on one answer, shaped like Flowise's table.

    One per message (`messageId` is unique). Like `chat_message.chatflowid`, no foreign keys:
    `ChatflowRepository.delete` and message deletion leave rows that the API no longer lists.
    """

    __tablename__ = "chat_message_feedback"
    __table_args__ = (UniqueConstraint("messageId"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    chatflowid: Mapped[str] = mapped_column(String(36), index=True)
    chatId: Mapped[str] = mapped_column(String(), index=True)
    messageId: Mapped[str] = mapped_column(String(36))
    rating: Mapped[str | None] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(Text)
    createdDate: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """An API key, stored only as a slow hash (`apiSecret`, argon2id) of the key.

    A key reads `sw_<lookup>_<secret>`: `lookup` (public, unique) finds the row without trying every
    hash, and only the whole key matches `apiSecret`. The plaintext is shown once, when it is created.
    """

    __tablename__ = "apikey"
    __table_args__ = (UniqueConstraint("lookup"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    keyName: Mapped[str] = mapped_column(String())
    lookup: Mapped[str] = mapped_column(String(32))
    apiSecret: Mapped[str] = mapped_column(Text)
    createdDate: Mapped[datetime] = mapped_column(UTCDateTime())
    updatedDate: Mapped[datetime] = mapped_column(UTCDateTime())


class Credential(Base):
    """A model credential (an OpenAI key, ...) shaped like Flowise's: `encryptedData` is the JSON of its
    fields encrypted with the server's secret key; no API returns it."""

    __tablename__ = "credential"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String())
    credentialName: Mapped[str] = mapped_column(String())
    encryptedData: Mapped[str] = mapped_column(Text)
    createdDate: Mapped[datetime] = mapped_column(UTCDateTime())
    updatedDate: Mapped[datetime] = mapped_column(UTCDateTime())


class RunRow(Base):
    """A run dispatched to a worker (scale-out mode), and where it stands: the database, not Redis, is
    the truth for its status. `attempt` is the fencing token of the worker running it (0 while queued);
    see `streamwise.store.runs` for the states and the rules that move a run between them."""

    __tablename__ = "run"
    __table_args__ = (
        # The active runs of one chat.
        Index("ix_run_chatflowid_chatId_status", "chatflowid", "chatId", "status"),
        # Clean-up of finished runs, and finding the running ones.
        Index("ix_run_status_updatedDate", "status", "updatedDate"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    chatflowid: Mapped[str] = mapped_column(String(36))
    chatId: Mapped[str] = mapped_column(String())
    sessionId: Mapped[str | None] = mapped_column(String())
    status: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String())
    error: Mapped[str | None] = mapped_column(Text)
    # The kind of error (a `streamwise.errors` class name), for the HTTP status of a JSON answer.
    failure: Mapped[str | None] = mapped_column(String(64))
    createdDate: Mapped[datetime] = mapped_column(UTCDateTime())
    updatedDate: Mapped[datetime] = mapped_column(UTCDateTime())

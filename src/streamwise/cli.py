"""`streamwise start`: serve the API with uvicorn; SIGTERM drains running streams before exiting.
`streamwise ingest`: load files into a chatflow's vector store (see `ingest_command`).
`streamwise chat-ui`: a Streamlit chat app for the server (see `chat_ui.command`).
`streamwise apikey`: create, list and delete API keys (see `apikey_command`).
`streamwise worker`: run answers that API nodes hand out through Redis (see `worker_command`)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI

from streamwise import apikey_command, ingest_command, worker_command
from streamwise.app import create_app
from streamwise.chat_ui import command as chat_ui_command
from streamwise.memory import return_big_blocks
from streamwise.security.policy import is_loopback
from streamwise.settings import Settings
from streamwise.store import Database
from streamwise.store.apikeys import ApiKeyRepository


class DrainingServer(uvicorn.Server):
    """Uvicorn waits for open connections before shutting the app down; streams never close by
    themselves, so first stop every run (each stream gets `error` then `end`, the partial answer is
    stored), then let uvicorn finish."""

    def __init__(
        self, config: uvicorn.Config, app: FastAPI, settings: Settings, *, announce_start: bool = True
    ) -> None:
        super().__init__(config)
        self.fastapi_app = app
        self.settings = settings
        self.announce_start = announce_start

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        # Everything alive now (modules, classes, the loaded app) lives as long as the process: keep
        # it out of the collector's full passes, which otherwise stall the event loop for 50-70 ms
        # now and then under load (measured with a 10 MB request).
        gc.collect()
        gc.freeze()
        if self.announce_start and not self.should_exit:
            announce(self.fastapi_app, self.settings)

    async def shutdown(self, sockets: Any = None) -> None:
        state = getattr(self.fastapi_app.state, "streamwise", None)
        if state is not None:
            await state.runs.drain(self.settings.shutdown_grace_seconds)
        await super().shutdown(sockets)


def announce(app: FastAPI, settings: Settings) -> None:
    host = "localhost" if settings.host in {"0.0.0.0", "::", "127.0.0.1"} else settings.host
    base = f"http://{host}:{settings.port}"
    print(f"Streamwise is listening on {base}", flush=True)
    chatflow_id = app.state.example_chatflow_id
    if chatflow_id is None:
        print(f"No chatflows yet: create one with POST {base}/api/v1/chatflows", flush=True)
        return
    if app.state.seeded_chatflow_id:
        print(f"Created a chatflow on the embedded local model: {chatflow_id}", flush=True)
    else:
        print(f"Chatflow ready: {chatflow_id} (all of them: {base}/api/v1/chatflows)", flush=True)
    print("Stream an answer from it:", flush=True)
    print(
        f'  curl {base}/api/v1/predictions/{chatflow_id} -H "Content-Type: application/json" '
        '-d \'{"question": "Hello world!", "streaming": true}\'',
        flush=True,
    )
    documents = app.state.documents_chatflow_id
    if documents:
        print(f"Ask your documents ({documents}): feed it files, then ask with the same curl", flush=True)
        print(f"  streamwise ingest {documents} ~/my-notes/ report.pdf", flush=True)
        print(f'  curl {base}/api/v1/vector/upsert/{documents} -F "files=@report.pdf"', flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamwise", description="Streamwise flow server")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start the server")
    start.add_argument("--host", help="interface to listen on (default: STREAMWISE_HOST or 127.0.0.1)")
    start.add_argument("--port", type=int, help="TCP port (default: STREAMWISE_PORT or 3000)")
    start.add_argument(
        "--insecure",
        action="store_true",
        help="serve every management route without an API key, even beyond loopback (STREAMWISE_AUTH=open)",
    )
    start.add_argument(
        "--role",
        choices=("all", "api"),
        help="with STREAMWISE_REDIS_URL: `api` only serves the API and hands runs to `streamwise worker`s, "
        "`all` (the default) also runs a worker in this process",
    )
    ingest_command.add_parser(commands)
    apikey_command.add_parser(commands)
    worker_command.add_parser(commands)
    chat_ui_command.add_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "ingest":
        return ingest_command.run(args)
    if args.command == "chat-ui":
        return chat_ui_command.run(args)
    if args.command == "apikey":
        return apikey_command.run(args)
    if args.command == "worker":
        configure_logging(Settings())
        return worker_command.run(args)

    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.insecure:
        overrides["auth"] = "open"
    if args.role is not None:
        overrides["role"] = args.role
    settings = Settings(**overrides)
    if settings.role == "api" and settings.redis_url is None:
        print("--role api hands runs to workers through Redis: set STREAMWISE_REDIS_URL", file=sys.stderr)
        return 2
    refusal = open_to_the_network(settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    return_big_blocks()
    configure_logging(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="auto",
        http="auto",
        ws="none",  # no route speaks WebSocket: an upgrade request is answered as plain HTTP
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
    )
    server = DrainingServer(config, app, settings)
    server.run()
    return 0 if server.started else 1


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # aiosqlite logs every statement with its parameters at debug level: every question, answer and
    # stored value. Never useful, and never what a log should hold.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    if settings.log_level.lower() != "debug":
        # The HTTP clients log every request's whole URL at info, query string (and any key in it)
        # included: only a debugging operator asks for that.
        for name in ("httpx", "httpx2", "httpcore", "httpcore2"):
            logging.getLogger(name).setLevel(logging.WARNING)


def open_to_the_network(settings: Settings) -> str | None:
    """Why the server must not start as configured: listening beyond loopback with no key to guard
    the management routes (`auto` mode would lock them with no way in but the CLI, and nobody asked
    for `open`)."""
    if settings.auth != "auto" or is_loopback(settings.host):
        return None
    if asyncio.run(_count_keys(settings)):
        return None
    return (
        f"Refusing to listen on {settings.host} with no API key: anyone who can reach the port could "
        "change chatflows and read every conversation.\n"
        "Create a key first:  streamwise apikey create admin\n"
        "or start anyway, with every management route open:  streamwise start --insecure"
    )


async def _count_keys(settings: Settings) -> int:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with Database.from_url(settings.resolved_database_url) as database:
        await database.migrate()
        return await ApiKeyRepository(database).count()


if __name__ == "__main__":
    sys.exit(main())

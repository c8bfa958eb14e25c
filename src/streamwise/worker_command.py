"""`streamwise worker`: run the answers API nodes hand out through Redis (see docs/scale-out.md).

It needs the same `STREAMWISE_DATABASE_URL` and `STREAMWISE_REDIS_URL` as the API nodes. SIGTERM
(or Ctrl-C) stops taking runs and hands the running ones back to the queue, where another worker (or
this one, restarted) takes them over: their streams get `restart` and the answer again. Stopping
takes at most `STREAMWISE_SHUTDOWN_GRACE_SECONDS`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from streamwise.answerers import Answerers
from streamwise.api.chatflow_caller import InProcessChatflows
from streamwise.engine.graph import FlowGraph, GraphLimits, parse_flow_data_off_loop
from streamwise.engine.runs import RunManager
from streamwise.nodes.registry import default_registry, node_modules
from streamwise.scaleout import make_worker, redis_client
from streamwise.settings import Settings
from streamwise.store import ChatflowCache, ChatflowRecord, ChatflowRepository, Database, MessageRepository
from streamwise.store.credentials import CredentialRepository
from streamwise.store.instances import InstanceLease
from streamwise.store.secrets import CredentialCipher

logger = logging.getLogger("streamwise.worker")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser("worker", help="run answers handed out by API nodes (scale-out)")
    worker.add_argument(
        "--concurrency", type=int, help="runs at once (default: STREAMWISE_WORKER_CONCURRENCY or 50)"
    )


def run(args: argparse.Namespace) -> int:
    overrides = {} if args.concurrency is None else {"worker_concurrency": args.concurrency}
    settings = Settings(**overrides)
    if settings.redis_url is None:
        print(
            "streamwise worker needs STREAMWISE_REDIS_URL (and the API nodes' STREAMWISE_DATABASE_URL)",
            file=sys.stderr,
        )
        return 2
    return run_on_fastest_loop(serve(settings))


def run_on_fastest_loop(main: Coroutine[Any, Any, int]) -> int:
    """uvloop where it is installed (uvicorn[standard] brings it, as it does for the API node's
    server), asyncio's own loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def serve(settings: Settings) -> int:
    from streamwise.app import node_services  # the same node resources as a server

    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    print("==> worker: opening the database", flush=True)
    database = Database.from_url(settings.resolved_database_url)
    await database.migrate()
    messages = MessageRepository(database)
    lease = InstanceLease(database, messages)
    await lease.start()
    services = node_services(settings)
    registry = default_registry(services, node_modules(settings.node_modules))
    limits = GraphLimits(settings.max_flow_nodes, settings.max_flow_edges)

    async def prepare(record: ChatflowRecord) -> FlowGraph:
        return await parse_flow_data_off_loop(record.flowData, registry, limits)

    chatflows = ChatflowRepository(database)
    answerers = Answerers(
        ChatflowCache(chatflows, prepare, max_bytes=settings.flow_cache_bytes),
        registry,
        CredentialRepository(
            database, CredentialCipher.from_settings(settings.secret_key, settings.data_dir)
        ),
    )
    runs = RunManager(
        messages, checkpoint_seconds=settings.checkpoint_seconds, crash_safe=settings.crash_safe_history
    )
    services.chatflows = InProcessChatflows(answerers, runs, settings.max_history_turns)  # chatflowTool
    redis = redis_client(settings)
    worker = make_worker(settings, redis, database, messages, runs, answerers)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    print(
        f"==> worker {worker.options.name}: taking up to {settings.worker_concurrency} runs at once "
        f"(Redis key prefix {settings.redis_prefix!r})",
        flush=True,
    )
    try:
        await worker.serve()
    finally:
        await runs.close()
        await redis.aclose()
        await services.aclose()
        await lease.stop()
        await database.dispose()
    print(f"==> worker {worker.options.name}: stopped", flush=True)
    return 0

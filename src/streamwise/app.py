"""The application factory: storage, nodes and runs wired together behind FastAPI routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from streamwise import __version__
from streamwise.api import (
    apikeys,
    chat_page,
    chatflows,
    chatmessages,
    cors,
    credentials,
    feedback,
    health,
    ping,
    predictions,
    public_config,
    runs,
    vectors,
)
from streamwise.api.access import check_routes
from streamwise.api.chatflow_caller import InProcessChatflows
from streamwise.api.errors import install_error_handlers
from streamwise.api.hosts import HostPolicy
from streamwise.api.openapi import install as install_openapi
from streamwise.api.rate_limits import RateLimiter, StreamSlots, TrustedProxies
from streamwise.api.request_log import RequestLog
from streamwise.api.state import AppState
from streamwise.engine.graph import FlowGraph, GraphLimits, parse_flow_data_off_loop
from streamwise.engine.runs import RunManager
from streamwise.nodes.models.local_runtime import default_model_dirs
from streamwise.nodes.registry import default_registry, node_modules
from streamwise.nodes.services import NodeServices, ToolPolicy
from streamwise.scaleout import api_node, make_worker, redis_client, running
from streamwise.security.keys import KeyRing
from streamwise.security.policy import HostRule
from streamwise.seed import DOCS_NAME, SEED_NAME, documents_flow_data, seed_flow_data
from streamwise.settings import Settings
from streamwise.store import ChatflowCache, ChatflowRecord, ChatflowRepository, Database, MessageRepository
from streamwise.store.apikeys import ApiKeyRepository
from streamwise.store.credentials import CredentialRepository
from streamwise.store.instances import InstanceLease
from streamwise.store.records import RecordRepository
from streamwise.store.secrets import CredentialCipher

logger = logging.getLogger("streamwise")


def node_services(settings: Settings) -> NodeServices:
    """The shared node resources a server (or `streamwise ingest`) runs with."""
    return NodeServices(
        openai_base_url=settings.openai_base_url,
        local_model_path=settings.local_model_path,
        local_model_threads=settings.local_model_threads,
        model_timeout_seconds=settings.model_timeout_seconds,
        data_dir=settings.data_dir,
        model_dirs=tuple(settings.model_dirs) or default_model_dirs(settings.data_dir),
        agent_deadline_seconds=settings.agent_deadline_seconds,
        model_allowed_hosts=tuple(settings.model_allowed_hosts),
        tools=ToolPolicy(
            timeout_seconds=settings.tool_timeout_seconds,
            allowed_hosts=tuple(settings.http_tool_allowed_hosts),
            allow_private_network=settings.http_tool_allow_private,
            max_response_bytes=settings.http_tool_max_bytes,
            allow_stdio_mcp=settings.mcp_allow_stdio,
        ),
    )


def create_app(settings: Settings | None = None, services: NodeServices | None = None) -> FastAPI:
    settings = settings or Settings()
    services = services or node_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database.from_url(settings.resolved_database_url)
        await database.migrate()
        messages = MessageRepository(database)
        lease = InstanceLease(database, messages)
        await lease.start()  # also marks what a crashed predecessor left running as interrupted
        chatflow_repository = ChatflowRepository(database)
        registry = default_registry(services, node_modules(settings.node_modules))
        graph_limits = GraphLimits(settings.max_flow_nodes, settings.max_flow_edges)

        async def prepare(record: ChatflowRecord) -> FlowGraph:
            return await parse_flow_data_off_loop(record.flowData, registry, graph_limits)

        state = AppState(
            settings=settings,
            database=database,
            chatflows=chatflow_repository,
            chatflow_cache=ChatflowCache(chatflow_repository, prepare, max_bytes=settings.flow_cache_bytes),
            messages=messages,
            registry=registry,
            runs=RunManager(
                messages,
                checkpoint_seconds=settings.checkpoint_seconds,
                crash_safe=settings.crash_safe_history,
                max_unread_bytes=settings.stream_buffer_bytes,
                resume_seconds=settings.resume_seconds,
                resume_bytes=settings.resume_buffer_bytes,
            ),
            records=RecordRepository(database),
            keys=KeyRing(ApiKeyRepository(database)),
            credentials=CredentialRepository(
                database, CredentialCipher.from_settings(settings.secret_key, settings.data_dir)
            ),
            rate_limiter=RateLimiter(settings.rate_limit_storage),
            stream_slots=StreamSlots(settings.max_streams_per_client),
            proxies=TrustedProxies(settings.trusted_proxies),
        )
        scale_out = contextlib.AsyncExitStack()
        redis = redis_client(settings) if settings.redis_url else None
        if redis is not None:  # runs go to workers through Redis
            state.remote = await scale_out.enter_async_context(api_node(settings, redis, database))
            if settings.role == "all":
                worker = make_worker(settings, redis, database, messages, state.runs, state.answerers)
                await scale_out.enter_async_context(running(worker))
            logger.info("scale-out over Redis: role %s, key prefix %r", settings.role, settings.redis_prefix)
        await state.keys.reload()
        if not await state.credentials.key_matches():
            logger.error(
                "stored credentials do not decrypt with this server's secret key (STREAMWISE_SECRET_KEY)"
            )
        app.state.streamwise = state
        # for chatflowTool
        services.chatflows = InProcessChatflows(state.answerers, state.runs, settings.max_history_turns)
        if settings.seed and await state.chatflows.count() == 0:
            record = await state.chatflows.create({"name": SEED_NAME, "flowData": seed_flow_data()})
            documents = await state.chatflows.create({"name": DOCS_NAME, "flowData": documents_flow_data()})
            logger.info(
                "created chatflows %r (%s) and %r (%s)", SEED_NAME, record.id, DOCS_NAME, documents.id
            )
            app.state.seeded_chatflow_id = record.id
            app.state.example_chatflow_id = record.id
            app.state.documents_chatflow_id = documents.id
        else:
            existing = await state.chatflows.list()
            named = [record for record in existing if record.name == SEED_NAME]
            app.state.example_chatflow_id = (named or existing)[0].id if existing else None
            docs = [record for record in existing if record.name == DOCS_NAME]
            app.state.documents_chatflow_id = docs[0].id if docs else None
        preload = asyncio.create_task(_preload_local_model(settings, services))
        try:
            yield
        finally:
            await state.runs.drain(settings.shutdown_grace_seconds)
            await scale_out.aclose()
            if redis is not None:
                await redis.aclose()
            await state.runs.close()
            preload.cancel()
            await asyncio.gather(preload, return_exceptions=True)
            await services.aclose()
            await state.keys.aclose()
            await state.rate_limiter.aclose()
            await lease.stop()
            await database.dispose()

    app = FastAPI(title="Streamwise", version=__version__, lifespan=lifespan)
    app.state.seeded_chatflow_id = None  # set when this start created the ready chatflow
    app.state.example_chatflow_id = None  # the chatflow the start-up message shows how to call
    app.state.documents_chatflow_id = None  # the "Ask your documents" chatflow, when there is one
    install_error_handlers(app)
    install_openapi(app, settings)
    routers = (
        predictions,
        chatflows,
        chatmessages,
        vectors,
        ping,
        public_config,
        feedback,
        chat_page,
        apikeys,
        credentials,
        runs,
        health,
    )
    for module in routers:
        app.include_router(module.router)
    check_routes(app)  # every route declares who may call it
    cors.install(app, settings)
    app.add_middleware(HostPolicy, rule=HostRule.for_server(settings.allowed_hosts, settings.host))
    app.add_middleware(RequestLog)  # outermost: it also sees CORS preflights and refused hosts
    return app


async def _preload_local_model(settings: Settings, services: NodeServices) -> None:
    if not settings.preload_local_model:
        return
    from streamwise.nodes.models.chat_local import preload

    try:
        await preload(services)
    except Exception as exc:  # the server still serves remote models without it
        logger.warning("embedded model not loaded: %s", exc)

"""`streamwise ingest CHATFLOW_ID PATH...`: load files or folders into a chatflow's vector store.

It runs in this process, against the server's database and data directory (the same settings), so a
running server answers from the new passages at once. First the files are read and split (their
count, then the chunks'), then the chunks are embedded and added with a progress bar: chunks, chunks
per second and the time left. Upserting the same files again adds nothing. An in-memory vector store
lives in the server's process, so it is refused here: use the upsert route for it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Never

from tqdm import tqdm

from streamwise.api.credential_inputs import credential_inputs
from streamwise.app import node_services
from streamwise.engine import indexing
from streamwise.engine.graph import parse_flow_data_off_loop
from streamwise.engine.ingest import Progress, documents_of, upsert
from streamwise.engine.retrieval import RetrievalContext, UploadedFile
from streamwise.errors import StreamwiseError
from streamwise.nodes.registry import default_registry, node_modules
from streamwise.settings import Settings
from streamwise.store import ChatflowRepository, Database
from streamwise.store.credentials import CredentialRepository
from streamwise.store.records import RecordRepository
from streamwise.store.secrets import CredentialCipher

IN_MEMORY_STORES = frozenset({"memoryVectorStore", "fakeVectorStore"})


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingest = commands.add_parser("ingest", help="load files or folders into a chatflow's vector store")
    ingest.add_argument("chatflow_id", help="the chatflow whose vector store to fill")
    ingest.add_argument("paths", nargs="+", type=Path, help="files, or folders (read recursively)")
    ingest.add_argument("--node", help="the vector store node, when the chatflow has several")


def files_under(paths: list[Path]) -> list[UploadedFile]:
    files: list[UploadedFile] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
            files.extend(UploadedFile(name=str(p.relative_to(path)), path=p.resolve()) for p in found)
        elif path.is_file():
            files.append(UploadedFile(name=path.name, path=path.resolve()))
        else:
            raise SystemExit(f"streamwise ingest: {path} is neither a file nor a folder")
    return files


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


async def ingest(settings: Settings, chatflow_id: str, paths: list[Path], node_id: str | None) -> int:
    files = files_under(paths)
    print(f"{len(files)} file(s) to read", flush=True)
    services = node_services(settings)
    registry = default_registry(services, node_modules(settings.node_modules))
    database = Database.from_url(settings.resolved_database_url)
    try:
        await database.migrate()
        record = await ChatflowRepository(database).get(chatflow_id)
        if record is None:
            print(f"streamwise ingest: there is no chatflow {chatflow_id}", file=sys.stderr)
            return 2
        graph = await parse_flow_data_off_loop(record.flowData, registry)
        credentials = CredentialRepository(
            database, CredentialCipher.from_settings(settings.secret_key, settings.data_dir)
        )
        inject = await credential_inputs(graph, credentials)
        targets = indexing.plan(graph, registry, files=files, stop_node_id=node_id, inject=inject)
        context = RetrievalContext(chatflow_id)
        records = RecordRepository(database)
        for target in targets:
            if graph.nodes[target.node_id].name in IN_MEMORY_STORES:
                print(
                    f"streamwise ingest: node {target.node_id} keeps its vectors in the server's memory; "
                    f"upsert through POST /api/v1/vector/upsert/{chatflow_id} instead",
                    file=sys.stderr,
                )
                return 2
            print(f"reading and splitting into node {target.node_id} ...", flush=True)
            documents = await asyncio.to_thread(list, documents_of(target.node.loaders))
            print(f"{len(documents)} chunk(s); embedding them", flush=True)
            with tqdm(total=len(documents), unit="chunk", dynamic_ncols=True) as bar:
                advance = _advancing(bar)
                result = await upsert(
                    target.node,
                    context,
                    records,
                    cleanup=target.cleanup,
                    source_key=target.source_key,
                    namespace=target.namespace,
                    documents=documents,
                    progress=advance,
                )
            print(
                f"node {target.node_id}: {len(result.added)} added, {result.skipped} already there, "
                f"{result.deleted} deleted",
                flush=True,
            )
            result.added.close()
        return 0
    except StreamwiseError as exc:
        print(f"streamwise ingest: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await services.aclose()
        await database.dispose()


def _advancing(bar: tqdm[Never]) -> Callable[[Progress], None]:
    def advance(progress: Progress) -> None:
        bar.update(progress.chunks - bar.n)
        bar.set_postfix(added=progress.added, skipped=progress.skipped, refresh=False)

    return advance


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(ingest(settings, args.chatflow_id, list(args.paths), args.node))

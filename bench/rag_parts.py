"""The pieces of bench_rag.py: the corpus, the chatflows, the ways documents go in (the upsert route,
`streamwise ingest`), and the child processes that measure the embedding model and retrieval alone.

    .venv/bin/python bench/rag_parts.py embed FILE PASSES          # the model's own rate on FILE's chunks
    .venv/bin/python bench/rag_parts.py retrieval DIR QUERIES SIZE...  # question embedding + search

Both print one JSON object; bench_rag.py runs them in fresh processes, so that what they load and
the memory they take are their own (as bench_embeddings.py measures the models).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:  # `python bench/rag_parts.py` puts only bench/ on the path
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from bench_embeddings import labelled  # noqa: E402
from bench_http import FLOWISE, StreamResult, Target, post_json  # noqa: E402
from bench_procs import HOST, CpuSnapshot, Proc, foreign_cpu, streamwise_command, wait_for_quiet  # noqa: E402
from tests.support.flows import edge, node, openai_model, ref  # noqa: E402

CHUNK = 1000  # the splitter's chunkSize; every paragraph is at most this long
DIM = 384  # MiniLM's, and what the stub is asked for
TOP_K = 4  # the vector store node's default
TIMEOUT = 30.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def spread(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "runs": len(ordered),
    }


# the corpus ----------------------------------------------------------------------------------------


@functools.cache
def _passages() -> list[str]:
    return [" ".join(p["text"].split()) for p in labelled()["passages"]]


def paragraphs(count: int, first: int = 0) -> list[str]:
    """`count` distinct paragraphs of 880 to 999 characters (numbered labelled passages), no newlines."""
    passages = _passages()
    out = []
    for i in range(first, first + count):
        text = f"Part {i}. {passages[i % len(passages)]}"
        # Shorter than chunkSize: a piece of exactly chunkSize characters is split again.
        out.append(text if len(text) < CHUNK else text[: text.rfind(" ", 0, CHUNK - 1)])
    return out


def write_corpus(path: Path, count: int, first: int = 0) -> Path:
    path.write_text("\n\n".join(paragraphs(count, first)) + "\n")
    return path


def write_big(path: Path, size: int) -> tuple[Path, int, int]:
    """A text file of about `size` bytes; its paragraphs and its bytes."""
    written = count = 0
    with path.open("w") as out:
        while written < size:
            block = "\n\n".join(paragraphs(500, count)) + "\n\n"
            out.write(block)
            written += len(block.encode())
            count += 500
    return path, count, written


# flows ---------------------------------------------------------------------------------------------


def local_embeddings() -> dict[str, Any]:
    return node("localEmbeddings_0", "localEmbeddings", "Embeddings", {})


def stub_embeddings(base: str) -> dict[str, Any]:
    inputs = {"modelName": "stub", "basePath": base, "dimensions": DIM}
    return node("openAIEmbeddings_0", "openAIEmbeddings", "Embeddings", inputs)


def rag_flow(embeddings: dict[str, Any], base: str) -> str:
    """Text File → Recursive splitter (1000/0) → the embedded store → Conversational Retrieval QA Chain
    (ChatOpenAI at the stub, 20-token answers) with Buffer Memory: the seeded documents flow's shape."""
    model = openai_model(base, modelName="stub?tokens=20")
    splitter = node(
        "recursiveCharacterTextSplitter_0",
        "recursiveCharacterTextSplitter",
        "Text Splitters",
        {"chunkSize": CHUNK, "chunkOverlap": 0},
    )
    loader = node("textFile_0", "textFile", "Document Loaders", {"textSplitter": ref(splitter["id"])})
    store_inputs = {"document": [ref("textFile_0")], "embeddings": ref(embeddings["id"]), "topK": TOP_K}
    store = node("embeddedVectorStore_0", "embeddedVectorStore", "Vector Stores", store_inputs)
    memory = node("bufferMemory_0", "bufferMemory", "Memory", {"memoryKey": "chat_history"})
    chain_inputs = {
        "model": ref(model["id"]),
        "vectorStoreRetriever": ref(store["id"]),
        "memory": ref(memory["id"]),
        "returnSourceDocuments": True,
    }
    chain = node("conversationalRetrievalQAChain_0", "conversationalRetrievalQAChain", "Chains", chain_inputs)
    edges = [
        edge(splitter["id"], loader["id"], "textSplitter"),
        edge(loader["id"], store["id"], "document"),
        edge(embeddings["id"], store["id"], "embeddings"),
        edge(model["id"], chain["id"], "model"),
        edge(store["id"], chain["id"], "vectorStoreRetriever"),
        edge(memory["id"], chain["id"], "memory"),
    ]
    return json.dumps({"nodes": [model, splitter, loader, embeddings, store, memory, chain], "edges": edges})


async def create(client: httpx.AsyncClient, name: str, flow_data: str) -> str:
    response = await client.post("/api/v1/chatflows", json={"name": name, "flowData": flow_data})
    if response.status_code != 200:
        raise RuntimeError(f"creating chatflow {name!r} failed: {response.status_code} {response.text}")
    chatflow_id: str = response.json()["id"]
    return chatflow_id


# the ways in: the upsert route, the command line, child processes -----------------------------------


async def upsert(client: httpx.AsyncClient, chatflow_id: str, path: Path) -> dict[str, Any]:
    """A multipart upload of one file to the upsert route; seconds from the request to its answer."""
    with path.open("rb") as file:
        started = time.perf_counter()
        response = await client.post(
            f"/api/v1/vector/upsert/{chatflow_id}", files={"files": (path.name, file, "text/plain")}
        )
        seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"upsert of {path.name} failed: {response.status_code} {response.text[:300]}")
    added = int(response.json()["numAdded"])
    return {
        "chunks": added,
        "seconds": round(seconds, 3),
        "chunks_per_s": round(added / seconds, 1),
        "answer_bytes": len(response.content),  # Flowise's answer: addedDocs holds every chunk added
    }


async def stub_rate(stub: Proc, path: Path) -> dict[str, Any]:
    """The stub answering the requests the server makes: 64 texts each (the upsert's batch), in turn."""
    text = await asyncio.to_thread(path.read_text)
    texts = [t for t in text.split("\n\n") if t.strip()]
    async with httpx.AsyncClient(base_url=stub.url, timeout=TIMEOUT) as client:
        await client.post("/v1/embeddings", json={"model": "stub", "input": texts[:64], "dimensions": DIM})
        started = time.perf_counter()
        for at in range(0, len(texts), 64):
            body = {"model": "stub", "input": texts[at : at + 64], "dimensions": DIM}
            (await client.post("/v1/embeddings", json=body)).raise_for_status()
        seconds = time.perf_counter() - started
        await client.delete("/_stub/requests")
    return {
        "chunks": len(texts),
        "seconds": round(seconds, 3),
        "chunks_per_s": round(len(texts) / seconds, 1),
    }


def checked(result: StreamResult, tokens: int, what: str) -> StreamResult:
    if not result.ok or result.tokens != tokens or result.first_token is None:
        raise RuntimeError(f"{what}: {result.status} {result.error} ({result.tokens} tokens)")
    return result


def prediction(server: Proc, chatflow_id: str, question: str, chat: bool) -> Target:
    body: dict[str, Any] = {"question": question, "streaming": True}
    if chat:
        body["chatId"] = f"rag-{uuid.uuid4()}"  # a fresh chat: no earlier turns, so no rephrase call
    port = int(server.url.rsplit(":", 1)[1])
    return post_json(HOST, port, f"/api/v1/prediction/{chatflow_id}", body, FLOWISE)


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and VmRSS's parts (RssAnon: the heap; RssFile: mapped files, such as the vector
    store's memory-mapped SQLite file, which the kernel may drop) from /proc/PID/status, in KiB."""
    keys = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")
    with open(f"/proc/{pid}/status") as status:
        fields = (line.partition(":") for line in status)
        return {key: int(rest.split()[0]) for key, _, rest in fields if key in keys}


def cli_env(data_dir: Path) -> dict[str, str]:
    """The settings start_server gives the server, so that `streamwise ingest` finds its chatflows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWISE_")}
    env.update(
        STREAMWISE_DATA_DIR=str(data_dir),
        STREAMWISE_DATABASE_URL=f"sqlite+aiosqlite:///{data_dir / 'streamwise.db'}",
        STREAMWISE_LOG_LEVEL="warning",
        STREAMWISE_NODE_MODULES="tests.support.fake_model,tests.support.fake_retrieval",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    return env


_EMBEDDING = re.compile(r"^(\d+) chunk\(s\); embedding them")
_ADDED = re.compile(r"^node \S+: (\d+) added")


def run_cli(
    chatflow_id: str, path: Path, data_dir: Path, workdir: Path, timeout: float = 600
) -> dict[str, Any]:
    """`streamwise ingest CHATFLOW_ID PATH` in a subprocess, its stdout lines timed as they come."""
    command = [*streamwise_command(), "ingest", chatflow_id, str(path)]
    marks: dict[str, float] = {}
    added = peak = 0
    with (workdir / "ingest.log").open("ab") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=cli_env(data_dir), cwd=workdir, stdout=subprocess.PIPE, stderr=err
        )
    timer = threading.Timer(timeout, process.kill)  # only this child, by its handle
    timer.start()
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            line, now = raw.decode(errors="replace").strip(), time.perf_counter()
            if _EMBEDDING.match(line):
                marks["embedding"] = now
            elif found := _ADDED.match(line):
                marks["done"], added = now, int(found.group(1))
                # Its peak so far (VmHWM starts afresh at exec; ru_maxrss would carry this process's).
                with contextlib.suppress(OSError):
                    peak = rss_kib(process.pid)["VmHWM"]
        process.wait()
    finally:
        timer.cancel()
    ended = time.perf_counter()
    if process.returncode != 0 or "embedding" not in marks or "done" not in marks:
        tail = (workdir / "ingest.log").read_text(errors="replace")[-500:]
        raise RuntimeError(f"streamwise ingest failed (exit {process.returncode}): {tail}")
    embedding = marks["done"] - marks["embedding"]
    return {
        "chunks": added,
        "process_s": round(ended - started, 3),
        "embedding_s": round(embedding, 3),  # from "embedding them" to "added": model load included
        "before_embedding_s": round(marks["embedding"] - started, 3),  # start-up, read and split
        "chunks_per_s": round(added / embedding, 1),
        "process_chunks_per_s": round(added / (ended - started), 1),
        "peak_rss_mib": round(peak / 1024, 1),  # VmHWM when it printed its last line
    }


def child(kind: str, *args: str, timeout: float = 900) -> dict[str, Any]:
    """`python bench/rag_parts.py KIND ARGS...` in a fresh process; the JSON it prints."""
    command = [sys.executable, str(Path(__file__)), kind, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"child {kind} failed: {done.stderr[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def noted(pids: tuple[int, ...], phase: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """One phase, with the CPU other processes took meanwhile (bench_report flags a noisy one)."""
    before = CpuSnapshot.take(pids)
    result = await phase
    result["other_cpu"] = foreign_cpu(before, CpuSnapshot.take(pids))
    return result


async def quiet(seconds: float) -> None:
    if seconds > 0:
        share = await asyncio.to_thread(wait_for_quiet, seconds)
        log(f"  (other processes' share of the machine: {share:.0%})")


# children: the model alone, and retrieval on the store's own backend ---------------------------------


async def child_embed(text: str, passes: int) -> dict[str, Any]:
    """The default model on the chunks the flows' splitter cuts from `text`: loaded, then `1 + passes`
    passes through `embed` on the runtime localEmbeddings uses (its worker thread, its units)."""
    from streamwise.nodes.embeddings.local_runtime import MINILM, MODELS, LocalEmbeddingRuntime
    from streamwise.nodes.splitters.langchain_js import JsRecursiveSplitter
    from streamwise.nodes.splitters.recursive_character import DEFAULT_SEPARATORS

    chunks = JsRecursiveSplitter(list(DEFAULT_SEPARATORS), CHUNK, 0).split_text(text)
    runtime, model = LocalEmbeddingRuntime(), MODELS[MINILM]
    started = time.perf_counter()
    await runtime.load(model)
    load = time.perf_counter() - started
    seconds = []
    for _ in range(1 + passes):
        started = time.perf_counter()
        await runtime.embed(model, chunks, query=False)
        seconds.append(time.perf_counter() - started)
    runtime.close()
    warm = statistics.median(seconds[1:])
    return {
        "chunks": len(chunks),
        "matches_paragraphs": bool(chunks) and chunks == [p.strip() for p in text.split("\n\n") if p.strip()],
        "threads": runtime.threads,
        "load_s": round(load, 3),
        "pass_s": [round(s, 3) for s in seconds],
        "cold_rate": round(len(chunks) / (load + seconds[0]), 1),  # load + first pass, as a fresh CLI
        "warm_rate": round(len(chunks) / warm, 1),  # median of the later passes, as a warm server
        "best_rate": round(len(chunks) / min(seconds[1:]), 1),
    }


async def child_retrieval(folder: Path, queries: int, sizes: list[int]) -> dict[str, Any]:
    """localEmbeddings' question embedding and the embedded store's search, as a vector store node
    runs them, over synthetic unit vectors added through the store's backend."""
    from bench_vectors import unit_vectors

    from streamwise.engine.retrieval import Document, RetrievalContext
    from streamwise.nodes.embeddings.local_embeddings import LocalEmbeddings
    from streamwise.nodes.embeddings.local_runtime import resolve
    from streamwise.nodes.services import NodeServices
    from streamwise.nodes.vectorstores.base import SearchSettings
    from streamwise.nodes.vectorstores.embedded_vector_store import EmbeddedVectorStoreNode
    from streamwise.vectors.scope import Scope

    services = NodeServices(data_dir=folder)
    model = resolve(None)
    assert model is not None
    embeddings = LocalEmbeddings(services, model)
    store_node = EmbeddedVectorStoreNode(
        "embeddedVectorStore_0", services, (), embeddings, SearchSettings(TOP_K)
    )
    questions = [q["query"] for q in labelled()["queries"]]
    await embeddings.embed_query("warm-up")  # loads the model
    results: dict[str, Any] = {"k": TOP_K, "dimension": DIM, "queries": queries, "sizes": {}}
    try:
        for size in sizes:
            context = RetrievalContext(f"bench-{size}")
            backend, scope = store_node.backend(context), Scope(store_node.who, embeddings.key)
            vectors = unit_vectors(size, seed=size)
            started = time.perf_counter()
            for at in range(0, size, 5000):
                ids = [str(i) for i in range(at, min(size, at + 5000))]
                docs = [Document(f"passage {i}", {"source": "synthetic"}) for i in ids]
                await backend.add(scope, ids, docs, vectors[at : at + len(ids)].tolist())
            fill = time.perf_counter() - started
            store = await store_node.open_store(context)
            await store_node.search(questions[0], context)  # warm: reader thread, page cache
            embed, search, total = [], [], []
            for i in range(queries):
                question = questions[i % len(questions)]
                started = time.perf_counter()
                vector = await embeddings.embed_query(question)
                embedded = time.perf_counter()
                found = await store.search(vector, TOP_K)
                searched = time.perf_counter()
                assert len(found) == min(TOP_K, size)
                await store_node.search(question, context)  # the node's own path, whole
                embed.append(ms(embedded - started))
                search.append(ms(searched - embedded))
                total.append(ms(time.perf_counter() - searched))
            results["sizes"][str(size)] = {
                "fill_s": round(fill, 2),
                "embed_ms": spread(embed),
                "search_ms": spread(search),
                "total_ms": spread(total),
            }
    finally:
        await services.aclose()
    return results


def main(argv: Sequence[str]) -> int:
    kind, *args = argv
    if kind == "embed":
        text = Path(args[0]).read_text()
        result = asyncio.run(child_embed(text, int(args[1])))
    elif kind == "retrieval":
        folder, queries, *sizes = args
        result = asyncio.run(child_retrieval(Path(folder), int(queries), [int(s) for s in sizes]))
    else:
        raise SystemExit(f"unknown measurement {kind!r}: embed or retrieval")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

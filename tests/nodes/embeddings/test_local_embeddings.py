"""localEmbeddings with the real embedded models (small inputs: a few seconds in all)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamwise.engine.retrieval import Embeddings
from streamwise.errors import ModelUnavailable, NodeConfigError
from streamwise.nodes.embeddings import local_embeddings, local_runtime
from streamwise.nodes.embeddings.local_embeddings import LocalEmbeddings
from streamwise.nodes.embeddings.local_runtime import (
    CACHE_KEY,
    E5_SMALL,
    MINILM,
    LocalEmbeddingError,
    LocalEmbeddingRuntime,
    ModelInfo,
    shared_runtime,
)
from streamwise.nodes.services import NodeServices
from tests.support.waiting import until

LABELLED = Path(__file__).resolve().parents[2] / "fixtures" / "retrieval" / "labelled.json"
# Measured (bench/bench_embeddings.py): all-MiniLM-L6-v2-int8 finds the answering passage among the
# first five for 22 of 22 questions (21 of 22 first). 0.9 allows two misses, for a model update or a
# different CPU's rounding, and still fails a broken tokenizer, pooling or query/passage mix-up,
# which land far below (a random ranking of 41 passages gives about 0.12).
MIN_RECALL_AT_5 = 0.9

CAT = "The cat sat on the mat in the warm kitchen."
KITTEN = "A small kitten was sitting on a rug by the stove."
MARKETS = "Stock markets fell sharply after the central bank raised interest rates."


def build(services: NodeServices, **inputs: Any) -> LocalEmbeddings:
    return local_embeddings.build("localEmbeddings_0", inputs, services)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.dot(a, b))


def runtime_of(services: NodeServices) -> LocalEmbeddingRuntime:
    runtime = services.cache[CACHE_KEY]
    assert isinstance(runtime, LocalEmbeddingRuntime)
    return runtime


def test_building_touches_nothing(services: NodeServices) -> None:
    threads = threading.active_count()

    node = build(services)

    assert isinstance(node, Embeddings)
    assert node.key == f"local:{MINILM}" and services.cache == {}
    assert threading.active_count() == threads
    assert build(services, model="multilingual-e5-small").key == f"local:{E5_SMALL}"


def test_an_unknown_model_names_the_node_and_the_models(services: NodeServices) -> None:
    with pytest.raises(NodeConfigError) as caught:
        build(services, model="gpt-embed-9000")

    assert "localEmbeddings_0" in str(caught.value) and MINILM in str(caught.value)


@pytest.mark.parametrize("model", [MINILM, E5_SMALL])
async def test_vectors_are_deterministic_normalised_and_similar_texts_score_higher(
    services: NodeServices, model: str
) -> None:
    node = build(services, model=model)

    vectors = await node.embed_documents([CAT, KITTEN, MARKETS, CAT])
    query = await node.embed_query("Where is the cat sitting?")

    assert [len(v) for v in vectors] == [384] * 4
    assert all(abs(np.linalg.norm(v) - 1.0) < 1e-4 for v in vectors)
    assert vectors[0] == vectors[3]
    assert vectors == await node.embed_documents([CAT, KITTEN, MARKETS, CAT])
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert cosine(query, vectors[0]) > cosine(query, vectors[2])
    assert cosine(query, vectors[1]) > cosine(query, vectors[2])
    assert await node.embed_documents([]) == []


async def test_a_very_long_text_is_embedded_as_its_beginning(services: NodeServices) -> None:
    node = build(services)
    text = " ".join(f"{MARKETS} {i}" for i in range(1500))  # about 110,000 characters

    async with asyncio.timeout(60):  # generous: it takes well under a second
        vector = await node.embed_documents([text])

    assert vector == await node.embed_documents([text[: node.model.max_chars]])


async def test_texts_reach_the_model_cut_short_in_units_of_about_the_budget() -> None:
    seen: list[list[int]] = []

    class Recorder:
        def encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
            seen.append([len(text) for text in texts])
            return np.ones((len(texts), 4), dtype=np.float32) / 2

    model = ModelInfo("recorder", 4, 1000, 700, (), lambda threads: Recorder())
    runtime = LocalEmbeddingRuntime()
    try:
        texts = ["x" * 5000, "y" * 300, "z" * 300, "w" * 300, *(["v" * 10] * 40)]
        vectors = await runtime.embed(model, texts, query=False)
    finally:
        runtime.close()

    assert vectors == [[0.5] * 4] * len(texts)
    # Longest first; about 1000 characters a unit; at most MAX_UNIT texts a unit.
    assert seen == [[700, 300], [300, 300, *[10] * 30], [10] * 10]


async def test_the_default_model_finds_the_answers_of_the_labelled_set(services: NodeServices) -> None:
    data = json.loads(LABELLED.read_text())
    node = build(services)
    ids = [p["id"] for p in data["passages"]]

    passages = np.array(await node.embed_documents([p["text"] for p in data["passages"]]))
    hits = 0
    for item in data["queries"]:
        ranked = [ids[i] for i in np.argsort(-(passages @ np.array(await node.embed_query(item["query"]))))]
        hits += item["answer"] in ranked[:5]

    assert len(ids) >= 40 and len(data["queries"]) >= 20
    assert hits / len(data["queries"]) >= MIN_RECALL_AT_5


async def test_the_model_loads_once_and_the_event_loop_keeps_running(
    services: NodeServices, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="streamwise.embeddings")
    node = build(services)
    worst = 0.0
    running = True

    async def ticker() -> None:
        nonlocal worst
        while running:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - started)

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(node.embed_documents([CAT] * 20), build(services).embed_query(KITTEN))
    running = False
    await ticking

    loads = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loading the local")]
    assert len(loads) == 1 and MINILM in loads[0]
    assert worst < 1.0  # generous: the embedding runs off the loop, a tick takes ~10 ms


async def test_a_query_does_not_wait_for_a_large_ingest(services: NodeServices) -> None:
    node = build(services)
    await node.embed_query("warm up")  # the load is not what this measures
    runtime = runtime_of(services)
    units = runtime.units_run

    ingest = asyncio.create_task(node.embed_documents([f"{i} {MARKETS * 5}" for i in range(60)]))
    await until(lambda: runtime.units_run > units, within=30, every=0.005)
    async with asyncio.timeout(30):
        vector = await node.embed_query(CAT)

    assert not ingest.done()  # the query took a turn between the ingest's units
    assert len(vector) == 384
    ingest.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ingest


async def test_cancelling_a_long_embed_stops_the_worker_after_the_unit_in_hand(
    services: NodeServices,
) -> None:
    node = build(services)
    await node.embed_query("warm up")
    runtime = runtime_of(services)
    start = runtime.units_run

    job = asyncio.create_task(node.embed_documents([f"{i} {MARKETS * 5}" for i in range(400)]))
    await until(lambda: runtime.units_run >= start + 2, within=30, every=0.005)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job

    # The worker is free again within one unit (about 0.1 s; 10 s is generous): its next turn comes.
    async with asyncio.timeout(10):
        await runtime.load(node.model)
    after = runtime.units_run
    await asyncio.sleep(0.2)
    assert runtime.units_run == after < start + 10  # nothing more of the cancelled job ran


async def test_closing_the_services_ends_the_worker_thread(services: NodeServices) -> None:
    await build(services).embed_query(CAT)
    runtime = runtime_of(services)
    (worker,) = runtime.workers

    await services.aclose()

    await until(lambda: not worker.is_alive(), within=10, every=0.01)
    assert runtime.closed and CACHE_KEY not in services.cache
    # A later use gets a new runtime.
    assert shared_runtime(services.cache) is not runtime


async def test_a_model_that_cannot_load_names_the_node_not_the_files(services: NodeServices) -> None:
    def broken(threads: int) -> local_runtime.Encoder:
        raise LocalEmbeddingError("/opt/secret/site-packages/model.onnx is missing")

    node = LocalEmbeddings(
        services, ModelInfo("broken-model", 384, 2000, 2500, ("some-package",), broken), node_id="le_1"
    )

    with pytest.raises(ModelUnavailable) as caught:
        await node.embed_query(CAT)

    assert (
        str(caught.value)
        == "Node le_1 (Local Embeddings (embedded)): the embedded model broken-model could not run"
    )
    assert "secret" not in str(caught.value)
    assert "model.onnx is missing" in (caught.value.detail or "") and "some-package" in (
        caught.value.detail or ""
    )

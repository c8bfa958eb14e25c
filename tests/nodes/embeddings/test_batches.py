"""Batching of embedding jobs, and the stub's embeddings (which the node tests rely on)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from streamwise.nodes.embeddings.batches import batched, embed_in_batches
from tests.support.openai_stub import stub_embedding


def test_batched_splits_into_consecutive_slices() -> None:
    assert batched([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert batched([], 3) == []
    with pytest.raises(ValueError):
        batched([1], 0)


async def test_batches_that_finish_out_of_order_are_reassembled_in_order() -> None:
    texts = [f"text {i}" for i in range(10)]
    started: list[str] = []

    async def embed(batch: Sequence[str]) -> list[list[float]]:
        started.append(batch[0])
        # Later batches answer sooner.
        await asyncio.sleep(0.002 * (10 - int(batch[0].split()[1])))
        return [[float(text.split()[1])] for text in batch]

    vectors = await embed_in_batches(texts, 3, embed, concurrency=4)

    assert vectors == [[float(i)] for i in range(10)]
    assert sorted(started) == ["text 0", "text 3", "text 6", "text 9"]


async def test_at_most_concurrency_batches_are_in_flight() -> None:
    in_flight = 0
    most = 0

    async def embed(batch: Sequence[str]) -> list[list[float]]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return [[0.0] for _ in batch]

    await embed_in_batches([str(i) for i in range(20)], 1, embed, concurrency=3)

    assert most == 3


async def test_a_failing_batch_fails_the_job_with_its_own_error_and_cancels_the_rest() -> None:
    cancelled = 0

    async def embed(batch: Sequence[str]) -> list[list[float]]:
        nonlocal cancelled
        if batch[0] == "1":
            raise KeyError("boom")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return [[0.0]]

    async with asyncio.timeout(5):
        with pytest.raises(KeyError):
            await embed_in_batches(["0", "1", "2"], 1, embed, concurrency=3)
    assert cancelled == 2


def test_stub_vectors_are_deterministic_normalised_and_similar_for_shared_words() -> None:
    cat = stub_embedding("the cat sat on the mat")
    assert cat == stub_embedding("The cat sat on the mat.")
    assert len(cat) == 64 and math.isclose(sum(x * x for x in cat), 1.0)
    assert len(stub_embedding("x", 384)) == 384
    assert stub_embedding("")[0] == 1.0

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(cat, stub_embedding("a cat on a mat")) > cosine(cat, stub_embedding("stock prices fell"))

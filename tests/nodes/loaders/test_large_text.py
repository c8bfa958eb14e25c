"""A big text file through textFile and recursiveCharacterTextSplitter is never held three times."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import pytest

from streamwise.engine.retrieval import UploadedFile
from streamwise.nodes.loaders import text_file
from streamwise.nodes.services import NodeServices
from streamwise.nodes.splitters import recursive_character

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo")


def write_text(path: Path, size: int) -> int:
    """Paragraphs of 20 to 120 words, one or two newlines apart, up to `size` bytes."""
    rng = random.Random(7)
    block = "".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120)))
        + (".\n\n" if rng.random() < 0.5 else ".\n")
        for _ in range(200)
    ).encode()
    with path.open("wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
    return path.stat().st_size


def peak_while_splitting(path: Path, services: NodeServices) -> tuple[int, int]:
    """(chunks, peak bytes Python allocated) for loading and splitting `path`."""
    splitter = recursive_character.build("split_0", {}, services)
    loader = text_file.build(
        "textFile_0", {"txtFile": [UploadedFile(path.name, path)], "textSplitter": splitter}, services
    )
    tracemalloc.start()
    try:
        count = 0
        for chunk in loader.load():
            assert len(chunk.page_content) <= 1000
            count += 1
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def check(tmp_path: Path, services: NodeServices, size: int) -> None:
    path = tmp_path / "big.txt"
    written = write_text(path, size)
    chunks, peak = peak_while_splitting(path, services)
    # The bytes and the decoded text exist together for a moment (2x); chunks are made and handed on
    # one at a time, so neither the pieces nor all the chunks are ever held besides the text.
    assert chunks > written // 1000
    assert peak < 2.5 * written, f"peak {peak / written:.2f}x the file size"


def test_an_8_mb_text_file_is_split_within_a_small_multiple_of_its_size(
    tmp_path: Path, services: NodeServices
) -> None:
    check(tmp_path, services, 8 * 1024 * 1024)


@pytest.mark.slow
def test_a_48_mb_text_file_is_split_within_a_small_multiple_of_its_size(
    tmp_path: Path, services: NodeServices
) -> None:
    check(tmp_path, services, 48 * 1024 * 1024)

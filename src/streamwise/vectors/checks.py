"""What every backend checks before it touches its data, so a refused call changes nothing.

Vectors are stored unit length: cosine similarity is then a dot product (memory, Faiss) or follows
from the Euclidean distance (sqlite-vec, Chroma), and every backend scores alike. A zero or non-finite
vector has no direction to compare and is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streamwise.engine.retrieval import Document
from streamwise.vectors.errors import StoreRefusal
from streamwise.vectors.scope import Scope

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Held:
    """What a namespace that holds entries is bound to."""

    dimension: int
    embedding_key: str | None


@dataclass(frozen=True, slots=True)
class Batch:
    """One `add`, checked: ids unique (the last of repeated ids wins), vectors unit length."""

    ids: list[str]
    documents: list[Document]
    vectors: Matrix  # (len(ids), dimension), float32, rows of unit length

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])


def batch(
    scope: Scope, ids: Sequence[str], documents: Sequence[Document], vectors: Sequence[Sequence[float]]
) -> Batch:
    if not len(ids) == len(documents) == len(vectors):
        raise StoreRefusal(
            f"{scope.who}: {len(ids)} ids, {len(documents)} documents and {len(vectors)} vectors "
            "do not pair up"
        )
    last = {entry_id: at for at, entry_id in enumerate(ids)}
    keep = sorted(last.values())
    matrix = unit_rows(scope, [vectors[at] for at in keep]) if keep else np.zeros((0, 0), np.float32)
    return Batch([str(ids[at]) for at in keep], [documents[at] for at in keep], matrix)


def unit_rows(scope: Scope, vectors: Sequence[Sequence[float]]) -> Matrix:
    dimensions = sorted({len(vector) for vector in vectors})
    if len(dimensions) > 1:
        listed = ", ".join(str(dimension) for dimension in dimensions)
        raise StoreRefusal(f"{scope.who}: the vectors of one batch have different dimensions ({listed})")
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise StoreRefusal(f"{scope.who}: the vectors must be lists of numbers") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise StoreRefusal(f"{scope.who}: the vectors must be non-empty lists of numbers")
    if not np.isfinite(matrix).all():
        raise StoreRefusal(f"{scope.who}: the vectors hold numbers that are not finite")
    norms = np.linalg.norm(matrix, axis=1)
    if not norms.all():
        raise StoreRefusal(f"{scope.who}: a zero vector has no direction to compare")
    unit: Matrix = (matrix / norms[:, None]).astype(np.float32, copy=False)
    return unit


def unit_query(scope: Scope, vector: Sequence[float]) -> npt.NDArray[np.float32]:
    row: npt.NDArray[np.float32] = unit_rows(scope, [vector])[0]
    return row


def fits(scope: Scope, held: Held | None, dimension: int, *, query: bool = False) -> None:
    """Refuse vectors of another dimension, or of another embeddings model, than the namespace holds."""
    if held is None:
        return
    if held.dimension != dimension:
        these = "the query has" if query else "these have"
        raise StoreRefusal(
            f"{scope.who}: this store holds {held.dimension}-dimensional vectors; {these} {dimension}"
        )
    if held.embedding_key and scope.embedding_key and held.embedding_key != scope.embedding_key:
        raise StoreRefusal(
            f"{scope.who}: this store was filled by the embeddings {held.embedding_key!r}, not "
            f"{scope.embedding_key!r}; upsert into another store, or empty this one first"
        )

"""Cosine similarity, best-k selection and maximal marginal relevance (MMR), on numpy arrays.

MMR is LangChain's (which Flowise's retrievers use): start from the candidate most similar to the
query, then repeatedly add the candidate with the highest
    lambda * (similarity to the query) - (1 - lambda) * (max similarity to those already selected),
ties going to the earlier candidate, until k are selected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32] | npt.NDArray[np.float64]


def cosine_similarity(left: Floats, right: Floats) -> npt.NDArray[np.float64]:
    """Pairwise cosine similarity of the rows of two 2-D arrays; a zero row is 0 to everything."""
    a = np.asarray(left, dtype=np.float64)
    b = np.asarray(right, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[0] if b.ndim == 2 else 0))
    a_norms = np.linalg.norm(a, axis=1, keepdims=True)
    b_norms = np.linalg.norm(b, axis=1, keepdims=True)
    a = np.divide(a, a_norms, out=np.zeros_like(a), where=a_norms != 0)
    b = np.divide(b, b_norms, out=np.zeros_like(b), where=b_norms != 0)
    similarity: npt.NDArray[np.float64] = a @ b.T
    return similarity


def best(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Indices of the `k` highest scores, highest first (ties: the earlier index first)."""
    if k <= 0 or scores.size == 0:
        return np.zeros(0, dtype=np.intp)
    # argpartition finds the k best in O(n); only those k are then sorted.
    chosen = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    order = np.lexsort((chosen, -scores[chosen]))
    picked: npt.NDArray[np.intp] = chosen[order]
    return picked


def maximal_marginal_relevance(
    query: Sequence[float] | Floats,
    candidates: Sequence[Sequence[float]] | Floats,
    k: int,
    lambda_mult: float,
) -> list[int]:
    """Indices into `candidates`, in the order MMR selects them (at most `k`)."""
    vectors = np.asarray(candidates, dtype=np.float64)
    count = min(k, vectors.shape[0]) if vectors.ndim == 2 else 0
    if count <= 0:
        return []
    to_query = cosine_similarity(np.asarray(query, dtype=np.float64)[None, :], vectors)[0]
    between = cosine_similarity(vectors, vectors)
    selected = [int(np.argmax(to_query))]
    # redundancy[i]: the highest similarity of candidate i to any candidate selected so far
    redundancy = between[:, selected[0]].copy()
    taken = np.zeros(vectors.shape[0], dtype=bool)
    taken[selected[0]] = True
    while len(selected) < count:
        scores = lambda_mult * to_query - (1.0 - lambda_mult) * redundancy
        scores[taken] = -np.inf
        chosen = int(np.argmax(scores))
        selected.append(chosen)
        taken[chosen] = True
        np.maximum(redundancy, between[:, chosen], out=redundancy)
    return selected

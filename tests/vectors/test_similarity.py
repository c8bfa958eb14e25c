"""Cosine similarity, best-k and maximal marginal relevance, against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from streamwise.vectors.similarity import best, cosine_similarity, maximal_marginal_relevance

# Unit vectors; similarities to the query (0.6, 0.8, 0): A 0.6, B 0.96, C 0.48, D 0.8.
# Between them: A·B 0.8, A·C 0.8, A·D 0, B·C 0.64, B·D 0.6, C·D 0.
QUERY = [0.6, 0.8, 0.0]
A, B, C, D = [1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.8, 0.0, 0.6], [0.0, 1.0, 0.0]
CANDIDATES = [A, B, C, D]


@pytest.mark.parametrize(
    ("lambda_mult", "expected"),
    [
        # B first (most similar). Then 0.5 * (to query) - 0.5 * (to B): A -0.1, C -0.08, D +0.1 → D;
        # D is unlike A and C, so their scores stay: C (-0.08) beats A (-0.1).
        (0.5, [1, 3, 2]),
        # Relevance only: the similarity order.
        (1.0, [1, 3, 0]),
        # 0.9: A 0.54 - 0.08 = 0.46, C 0.432 - 0.064 = 0.368, D 0.72 - 0.06 = 0.66 → D, then A.
        (0.9, [1, 3, 0]),
        # 0.25: A 0.15 - 0.6 = -0.45, C 0.12 - 0.48 = -0.36, D 0.2 - 0.45 = -0.25 → D, then C.
        (0.25, [1, 3, 2]),
    ],
)
def test_mmr_hand_computed(lambda_mult: float, expected: list[int]) -> None:
    assert maximal_marginal_relevance(QUERY, CANDIDATES, 3, lambda_mult) == expected


def test_mmr_takes_at_most_what_there_is() -> None:
    assert maximal_marginal_relevance(QUERY, CANDIDATES, 10, 0.5) == [1, 3, 2, 0]
    assert maximal_marginal_relevance(QUERY, CANDIDATES, 0, 0.5) == []
    assert maximal_marginal_relevance(QUERY, [], 4, 0.5) == []
    assert maximal_marginal_relevance(QUERY, [A], 4, 0.5) == [0]


def test_mmr_ties_go_to_the_earlier_candidate() -> None:
    # Both others are orthogonal to the query and to the first pick: each scores exactly 0.
    assert maximal_marginal_relevance([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], 3, 0.5) == [0, 1, 2]


def _langchain_mmr(query: np.ndarray, candidates: np.ndarray, k: int, lambda_mult: float) -> list[int]:
    """LangChain's loop, written out as it reads, to check the vectorised one against."""
    to_query = cosine_similarity(query[None, :], candidates)[0]
    chosen = [int(np.argmax(to_query))]
    while len(chosen) < min(k, len(candidates)):
        best_score, best_at = -np.inf, -1
        to_chosen = cosine_similarity(candidates, candidates[chosen])
        for at, score in enumerate(to_query):
            if at in chosen:
                continue
            value = lambda_mult * score - (1 - lambda_mult) * max(to_chosen[at])
            if value > best_score:
                best_score, best_at = value, at
        chosen.append(best_at)
    return chosen


@pytest.mark.parametrize("seed", range(5))
def test_mmr_matches_langchains_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    candidates = rng.standard_normal((30, 8))
    query = rng.standard_normal(8)
    for lambda_mult in (0.0, 0.3, 0.5, 0.8, 1.0):
        assert maximal_marginal_relevance(query, candidates, 7, lambda_mult) == _langchain_mmr(
            query, candidates, 7, lambda_mult
        )


def test_cosine_similarity() -> None:
    similarity = cosine_similarity(np.array([[2.0, 0.0], [0.0, 0.0]]), np.array([[1.0, 1.0], [3.0, 0.0]]))

    assert similarity == pytest.approx(np.array([[2**-0.5, 1.0], [0.0, 0.0]]))
    assert cosine_similarity(np.zeros((0, 2)), np.ones((3, 2))).shape == (0, 3)


def test_best_orders_by_score_then_position() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9, -1.0], dtype=np.float32)

    assert best(scores, 3).tolist() == [1, 3, 2]
    assert best(scores, 10).tolist() == [1, 3, 2, 0, 4]
    assert best(scores, 0).tolist() == []

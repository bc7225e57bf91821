import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from funnelrec.rerank.mmr import mmr_select, relevance_order
from funnelrec.rerank.similarity import cosine_kernel, normalize_relevance


def _naive_mmr(rel: np.ndarray, sim: np.ndarray, k: int, lam: float) -> list[int]:
    """Textbook MMR: recompute the max similarity to the selected set for every candidate."""
    r = normalize_relevance(rel)
    chosen: list[int] = []
    for _ in range(min(k, len(r))):
        best, best_score = -1, -np.inf
        for i in range(len(r)):
            if i in chosen:
                continue
            # The first pick is the most relevant item, whatever lam.
            penalty = max((sim[i, j] for j in chosen), default=0.0)
            score = lam * r[i] - (1 - lam) * penalty if chosen else r[i]
            if score > best_score:
                best, best_score = i, score
        chosen.append(best)
    return chosen


@st.composite
def _inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    n = draw(st.integers(0, 25))
    # Few distinct values so ties are common; also wide-range floats.
    elements = st.one_of(
        st.sampled_from([0.0, 0.5, 1.0, -3.0]),
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    )
    rel = draw(arrays(np.float64, n, elements=elements))
    seed = draw(st.integers(0, 2**32 - 1))
    emb = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)
    return rel, cosine_kernel(emb), draw(st.integers(0, 30))


@settings(max_examples=150, deadline=None)
@given(_inputs())
def test_lam_one_is_a_stable_sort_by_relevance(args: tuple[np.ndarray, np.ndarray, int]) -> None:
    rel, sim, k = args
    out = mmr_select(rel, sim, k, lam=1.0)
    expected = sorted(range(len(rel)), key=lambda i: (-rel[i], i))[:k]
    assert out.dtype == np.int64
    assert out.tolist() == expected


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 0.95])
def test_matches_the_naive_reference(seed: int, lam: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    rel = rng.standard_normal(n)
    sim = cosine_kernel(rng.standard_normal((n, 4)))
    k = int(rng.integers(0, n + 3))
    assert mmr_select(rel, sim, k, lam).tolist() == _naive_mmr(rel, sim, k, lam)


def test_diversifies_near_duplicates() -> None:
    # Items 0 and 1 are the same direction; 2 is orthogonal and less relevant.
    emb = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]])
    out = mmr_select(np.array([1.0, 0.95, 0.6]), cosine_kernel(emb), 3, lam=0.5)
    assert out.tolist() == [0, 2, 1]


def test_k_bounds() -> None:
    rel, sim = np.array([0.2, 0.9, 0.5]), np.eye(3)
    assert mmr_select(rel, sim, 10, 0.5).tolist() == [1, 2, 0]
    assert mmr_select(rel, sim, 0, 0.5).shape == (0,)
    assert mmr_select(np.array([]), np.zeros((0, 0)), 5, 0.5).shape == (0,)
    assert relevance_order(rel, 2).tolist() == [1, 2]


def test_bad_inputs_raise_clear_errors() -> None:
    rel, sim = np.zeros(3), np.eye(3)
    for lam in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
            mmr_select(rel, sim, 2, lam)
    with pytest.raises(ValueError, match="similarity must be"):
        mmr_select(rel, np.eye(4), 2, 0.5)
    with pytest.raises(ValueError, match="k must be"):
        mmr_select(rel, sim, -1, 0.5)
    with pytest.raises(ValueError, match="relevance must be a 1-D"):
        mmr_select(np.zeros((3, 1)), sim, 2, 0.5)

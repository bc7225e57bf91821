import numpy as np
import pytest

from funnelrec.rerank.similarity import (
    category_kernel,
    cosine_kernel,
    item_kernel,
    normalize_relevance,
    validate_selection_inputs,
)


def test_cosine_kernel_values_and_zero_rows() -> None:
    emb = np.array([[3.0, 4.0], [6.0, 8.0], [0.0, 0.0], [-4.0, 3.0]], dtype=np.float32)
    sim = cosine_kernel(emb)
    assert sim.dtype == np.float32 and sim.shape == (4, 4)
    assert np.isfinite(sim).all()
    np.testing.assert_allclose(np.diagonal(sim), 1.0)
    np.testing.assert_allclose(sim[0, 1], 1.0, atol=1e-6)  # same direction, different norm
    np.testing.assert_allclose(sim[0, 3], 0.0, atol=1e-6)
    # The zero row is similar to nothing but itself.
    np.testing.assert_array_equal(np.delete(sim[2], 2), 0.0)
    np.testing.assert_array_equal(sim, sim.T)


def test_cosine_kernel_is_psd() -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((30, 4)).astype(np.float32)
    emb[5] = 0.0
    assert np.linalg.eigvalsh(cosine_kernel(emb).astype(np.float64)).min() > -1e-5


def test_category_kernel_unknown_is_similar_to_nothing() -> None:
    sim = category_kernel(np.array([2, 2, -1, -1, 5]))
    expected = np.array(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],
            [0, 0, 0, 1, 0],
            [0, 0, 0, 0, 1],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(sim, expected)


def test_item_kernel_blends_and_dispatches() -> None:
    emb = np.eye(3, dtype=np.float32)
    cat = np.array([0, 0, 1])
    np.testing.assert_allclose(item_kernel(emb, None, 0.3), cosine_kernel(emb))
    np.testing.assert_allclose(item_kernel(None, cat, 0.3), category_kernel(cat))
    blend = item_kernel(emb, cat, 0.25)
    np.testing.assert_allclose(blend, 0.75 * cosine_kernel(emb) + 0.25 * category_kernel(cat))
    np.testing.assert_allclose(np.diagonal(blend), 1.0)


def test_item_kernel_errors() -> None:
    with pytest.raises(ValueError, match="both are None"):
        item_kernel(None, None, 0.5)
    with pytest.raises(ValueError, match="3 rows but cat has 2"):
        item_kernel(np.eye(3), np.array([0, 1]), 0.5)
    with pytest.raises(ValueError, match="category_weight"):
        item_kernel(np.eye(3), None, 1.5)
    with pytest.raises(ValueError, match="2-D"):
        cosine_kernel(np.ones(3))
    with pytest.raises(ValueError, match="integer codes"):
        category_kernel(np.array([0.5, 1.0]))


def test_normalize_relevance() -> None:
    np.testing.assert_allclose(normalize_relevance(np.array([-2.0, 0.0, 2.0])), [0, 0.5, 1])
    np.testing.assert_array_equal(normalize_relevance(np.full(4, 7.0)), np.zeros(4))
    assert normalize_relevance(np.array([])).shape == (0,)


def test_validate_selection_inputs_messages() -> None:
    with pytest.raises(ValueError, match=r"must be \[N, N\] = \[3, 3\]"):
        validate_selection_inputs(np.zeros(3), np.eye(2), 1)
    with pytest.raises(ValueError, match="1-D"):
        validate_selection_inputs(np.zeros((3, 1)), np.eye(3), 1)
    with pytest.raises(ValueError, match="k must be"):
        validate_selection_inputs(np.zeros(3), np.eye(3), -1)
    with pytest.raises(ValueError, match="finite"):
        validate_selection_inputs(np.array([0.0, np.nan]), np.eye(2), 1)
    _, _, n = validate_selection_inputs(np.zeros(3), np.eye(3), 10)
    assert n == 3


@pytest.mark.parametrize("seed", range(10))
def test_item_kernel_blend_equals_the_numpy_blend(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    emb = rng.standard_normal((n, 8)).astype(np.float32)
    cat = rng.integers(-1, 4, n).astype(np.int32)
    weight = float(rng.random())
    expected = cosine_kernel(emb)
    expected *= np.float32(1.0 - weight)
    expected += np.float32(weight) * category_kernel(cat)
    np.testing.assert_array_equal(item_kernel(emb, cat, weight), expected)

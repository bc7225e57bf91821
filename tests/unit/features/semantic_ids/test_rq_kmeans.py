"""RQ-KMeans: code shapes, determinism, clamping to tiny catalogues, the residual property."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.features.semantic_ids import RQKMeans, RQKMeansConfig, semantic_ids_from_state


def _vectors(n: int = 400, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_codes_have_one_column_per_level_within_the_codebooks() -> None:
    x = _vectors()
    model = RQKMeans(RQKMeansConfig(levels=3, codebook_size=16)).fit(x)
    codes = model.encode(x)
    assert codes.shape == (400, 3) and codes.dtype == np.int32
    assert model.sizes == (16, 16, 16) and model.centroids.shape == (3, 16, 16)
    assert codes.min() >= 0 and codes.max() < 16


def test_same_seed_same_codes_other_seed_other_codebooks() -> None:
    x = _vectors()
    cfg = RQKMeansConfig(levels=2, codebook_size=8, seed=3)
    a, b = RQKMeans(cfg).fit(x), RQKMeans(cfg).fit(x)
    assert np.array_equal(a.centroids, b.centroids)
    assert np.array_equal(a.encode(x), b.encode(x))
    other = RQKMeans(cfg.model_copy(update={"seed": 4})).fit(x)
    assert not np.array_equal(a.centroids, other.centroids)


def test_each_level_reduces_the_reconstruction_error() -> None:
    x = _vectors()
    model = RQKMeans(RQKMeansConfig(levels=3, codebook_size=16)).fit(x)
    codes = model.encode(x)
    recon = np.zeros_like(x)
    errors = []
    for level in range(3):
        recon += model.centroids[level][codes[:, level]]
        errors.append(float(np.linalg.norm(x - recon, axis=1).mean()))
    assert errors[0] > errors[1] > errors[2]


def test_tiny_catalogue_clamps_the_codebook_to_the_items() -> None:
    x = _vectors(n=5)
    model = RQKMeans(RQKMeansConfig()).fit(x)  # 256 codes asked, 5 items
    assert model.sizes == (5, 5, 5)
    codes = model.encode(x)
    assert len({tuple(c) for c in codes}) == 5  # one first-level code per item
    single = RQKMeans(RQKMeansConfig(levels=2)).fit(x[:1])
    assert single.sizes == (1, 1) and single.encode(x).tolist() == [[0, 0]] * 5


def test_state_round_trip_encodes_identically() -> None:
    x = _vectors()
    cfg = RQKMeansConfig(levels=2, codebook_size=8)
    model = RQKMeans(cfg).fit(x)
    restored = semantic_ids_from_state(cfg, model.state())
    assert np.array_equal(restored.encode(x), model.encode(x))
    with pytest.raises(ValueError, match="levels"):
        RQKMeans.from_state(cfg.model_copy(update={"levels": 3}), model.state())


def test_bad_input_and_unfitted_use_fail_clearly() -> None:
    model = RQKMeans(RQKMeansConfig())
    with pytest.raises(RuntimeError, match="not fitted"):
        model.encode(_vectors(3))
    with pytest.raises(ValueError, match="no embeddings"):
        model.fit(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        model.fit(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.full((3, 2), np.nan, np.float32))
    fitted = RQKMeans(RQKMeansConfig(levels=1, codebook_size=4)).fit(_vectors(d=8))
    with pytest.raises(ValueError, match="dimensions"):
        fitted.encode(_vectors(d=4))

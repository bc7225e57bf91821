import numpy as np
import pytest

from funnelrec.rerank.dpp import dpp_greedy, dpp_log_det, dpp_quality, dpp_select
from funnelrec.rerank.similarity import cosine_kernel


def _random_case(seed: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(n), cosine_kernel(rng.standard_normal((n, d)))


def test_duplicates_come_after_one_of_each_distinct_item() -> None:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((8, 4)))[0].T  # 4 orthonormal directions
    group = np.repeat(np.arange(4), 3)  # every item three times
    sim = cosine_kernel(basis[group])
    out = dpp_select(rng.random(12), sim, k=12, theta=0.7)
    assert sorted(group[out[:4]].tolist()) == [0, 1, 2, 3]
    assert sorted(out.tolist()) == list(range(12))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("jitter", [0.0, 1e-3])
def test_greedy_picks_maximise_log_det_and_sum_to_it(seed: int, jitter: float) -> None:
    rel, sim = _random_case(seed, n=8, d=6)
    theta, k = 0.6, 5
    result = dpp_greedy(rel, sim, k, theta=theta, jitter=jitter)
    picks = result.positions.tolist()
    assert len(result.log_gain) == k  # a rank-6 kernel supports 5 greedy picks
    for t, chosen in enumerate(picks):
        prefix = picks[:t]
        brute = {
            i: dpp_log_det(sim, rel, theta, jitter, np.array([*prefix, i]))
            for i in range(8)
            if i not in prefix
        }
        assert brute[chosen] == pytest.approx(max(brute.values()), abs=1e-9)
    final = dpp_log_det(sim, rel, theta, jitter, result.positions)
    assert result.log_gain.sum() == pytest.approx(final, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_sliding_window_matches_brute_force(seed: int) -> None:
    rel, sim = _random_case(seed, n=12, d=3)
    theta, jitter, window, k = 0.5, 1e-3, 3, 10
    out = dpp_select(rel, sim, k, theta=theta, window=window, jitter=jitter).tolist()
    chosen: list[int] = []
    for _ in range(k):
        recent = chosen[-window:]
        base = dpp_log_det(sim, rel, theta, jitter, np.array(recent, dtype=np.int64))
        gains = {
            i: dpp_log_det(sim, rel, theta, jitter, np.array([*recent, i])) - base
            for i in range(12)
            if i not in chosen
        }
        chosen.append(max(gains, key=lambda i: (gains[i], -i)))
    assert out == chosen


def test_jitter_lifts_the_rank_cap() -> None:
    # A rank-4 kernel: without jitter greedy DPP has no volume left after 4 picks.
    rel, sim = _random_case(1, n=40, d=4)
    capped = dpp_greedy(rel, sim, 10, jitter=0.0)
    assert len(capped.log_gain) == 4
    assert len(set(capped.positions.tolist())) == 10
    # The slots after the cap are filled by relevance.
    rest = [i for i in np.argsort(-rel, kind="stable") if i not in capped.positions[:4]]
    assert capped.positions[4:].tolist() == rest[:6]

    jittered = dpp_greedy(rel, sim, 10)
    assert len(jittered.log_gain) == 10
    assert len(set(jittered.positions.tolist())) == 10
    windowed = dpp_select(rel, sim, 10, window=3)
    assert len(set(windowed.tolist())) == 10


def test_theta_extremes() -> None:
    _, sim = _random_case(2, n=10, d=3)
    rel = np.random.default_rng(2).permutation(10).astype(np.float64)
    expected = np.argsort(-rel, kind="stable")[:6].tolist()
    assert dpp_select(rel, sim, 6, theta=1.0).tolist() == expected
    # Near 1 the (capped) quality exponent makes relevance dominate, without overflow.
    with np.errstate(all="raise"):
        assert dpp_select(rel, sim, 6, theta=0.999999).tolist() == expected
    assert dpp_quality(np.array([0.0, 1.0]), theta=0.0).tolist() == [1.0, 1.0]


def test_k_bounds_and_log_det_of_empty_set() -> None:
    rel, sim = _random_case(3, n=5, d=5)
    assert sorted(dpp_select(rel, sim, 50).tolist()) == list(range(5))
    assert dpp_select(rel, sim, 0).shape == (0,)
    assert dpp_log_det(sim, rel, 0.5, 0.0, np.array([], dtype=np.int64)) == 0.0


def test_bad_inputs_raise_clear_errors() -> None:
    rel, sim = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match=r"theta must be in \[0, 1\]"):
        dpp_select(rel, sim, 2, theta=1.5)
    with pytest.raises(ValueError, match="window must be"):
        dpp_select(rel, sim, 2, window=0)
    with pytest.raises(ValueError, match="jitter"):
        dpp_select(rel, sim, 2, jitter=-1.0)
    with pytest.raises(ValueError, match="similarity must be"):
        dpp_select(rel, np.eye(2), 2)
    with pytest.raises(ValueError, match=r"\[0, 1\) for a DPP kernel"):
        dpp_log_det(sim, rel, 1.0, 0.0, np.array([0]))


def _numpy_greedy(rel: np.ndarray, sim: np.ndarray, k: int, theta: float, jitter: float) -> list:
    """The greedy picks as plain NumPy steps (the compiled loop's reference, no window)."""
    q = dpp_quality(rel, theta)
    d2 = q * q * (np.diagonal(sim).astype(np.float64) + jitter)
    rows: list[np.ndarray] = []
    picks = []
    for _ in range(min(k, rel.shape[0])):
        j = int(d2.argmax())
        picks.append(j)
        gain = d2[j]
        d2[j] = -np.inf
        e = q[j] * q * sim[j]
        if rows:
            c = np.array(rows)
            e -= c[:, j] @ c
        e /= np.sqrt(gain)
        rows.append(e)
        d2 -= e * e
    return picks


@pytest.mark.parametrize("seed", range(20))
def test_compiled_greedy_picks_equal_the_numpy_steps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 120))
    emb = rng.standard_normal((n, 16))
    emb[rng.random(n) < 0.2] = 0.0  # items without a vector
    sim = cosine_kernel(emb)
    rel = rng.random(n)
    k = int(rng.integers(1, n + 1))
    result = dpp_greedy(rel, sim, k, theta=0.9, jitter=1e-3)
    assert result.positions.tolist() == _numpy_greedy(rel, sim, k, 0.9, 1e-3)

"""Listwise softmax loss against hand-computed values, its gradients, queries without a
positive, and mini-batches of whole queries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from funnelrec.rank.listwise import listwise_softmax_loss, query_batches


def two_queries() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query 17: logits (1, 2, 0), labels (1, 0, 1); query 3: logits (0.5, -0.5), labels
    (0, 1). Rows interleaved, ids not 0..Q-1."""
    logits = torch.tensor([1.0, 0.5, 2.0, -0.5, 0.0], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    query = torch.tensor([17, 3, 17, 3, 17])
    return logits, labels, query


def test_loss_matches_hand_computation() -> None:
    logits, labels, query = two_queries()
    lse17 = math.log(math.e**1 + math.e**2 + math.e**0)  # 2.40761
    loss17 = -(0.5 * (1 - lse17) + 0.5 * (0 - lse17))  # 1.90761
    lse3 = math.log(math.exp(0.5) + math.exp(-0.5))  # 0.81326
    loss3 = -(-0.5 - lse3)  # 1.31326
    value = float(listwise_softmax_loss(logits, labels, query).detach())
    assert value == pytest.approx((loss17 + loss3) / 2, rel=1e-12)
    assert value == pytest.approx(1.610435, abs=1e-5)


def test_gradient_is_softmax_minus_target_over_queries() -> None:
    logits, labels, query = two_queries()
    listwise_softmax_loss(logits, labels, query).backward()
    assert logits.grad is not None
    e17 = np.exp([1.0, 2.0, 0.0])
    e3 = np.exp([0.5, -0.5])
    expected = np.empty(5)
    expected[[0, 2, 4]] = e17 / e17.sum() - np.array([0.5, 0.0, 0.5])
    expected[[1, 3]] = e3 / e3.sum() - np.array([0.0, 1.0])
    np.testing.assert_allclose(logits.grad.numpy(), expected / 2, rtol=1e-12)
    # Shift invariance: each query's gradients sum to zero.
    assert logits.grad[[0, 2, 4]].sum().abs() < 1e-12


def test_queries_without_a_positive_contribute_nothing() -> None:
    logits, labels, query = two_queries()
    base = float(listwise_softmax_loss(logits, labels, query).detach())
    more = torch.cat([logits.detach(), torch.tensor([3.0, -1.0, 0.2], dtype=torch.float64)])
    more.requires_grad_(True)
    loss = listwise_softmax_loss(
        more,
        torch.cat([labels, torch.zeros(3, dtype=torch.float64)]),
        torch.cat([query, torch.tensor([9, 9, 9])]),
    )
    assert float(loss.detach()) == pytest.approx(base, rel=1e-12)
    loss.backward()
    assert more.grad is not None
    assert torch.all(more.grad[5:] == 0) and torch.any(more.grad[:5] != 0)


def test_no_positive_at_all_is_zero_and_finite() -> None:
    logits = torch.tensor([1e4, -1e4, 5.0], requires_grad=True)
    loss = listwise_softmax_loss(logits, torch.zeros(3), torch.tensor([0, 0, 1]))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_extreme_logits_stay_finite() -> None:
    logits = torch.tensor([1e4, -1e4, 0.0, 80.0], requires_grad=True)
    loss = listwise_softmax_loss(logits, torch.tensor([0.0, 1.0, 1.0, 0.0]), torch.zeros(4))
    loss.backward()
    assert (
        torch.isfinite(loss) and float(loss.detach()) > 1e3
    )  # the positives sit far below the top
    assert logits.grad is not None and torch.all(torch.isfinite(logits.grad))


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="same 1-D shape"):
        listwise_softmax_loss(torch.zeros(3), torch.zeros(2), torch.zeros(3))


def test_batches_never_split_a_query() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, 300)
    query = rng.permutation(np.repeat(rng.permutation(10_000)[:300], sizes))
    batches = query_batches(query, 256, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert np.array_equal(np.sort(rows), np.arange(query.size))  # every row exactly once
    owner: dict[int, int] = {}
    for b, batch in enumerate(batches):
        for q in np.unique(query[batch]):
            assert owner.setdefault(int(q), b) == b, f"query {q} split across batches"
    lengths = np.array([len(b) for b in batches])
    assert np.all(lengths[:-1] >= 256 - 39) and np.all(lengths < 256 + 39)
    assert abs(lengths.mean() - 256) < 40


def test_batches_shuffle_queries_and_keep_row_order() -> None:
    query = np.array([4, 2, 4, 9, 2, 9, 4])
    ordered = query_batches(query, 100)
    assert [b.tolist() for b in ordered] == [[1, 4, 0, 2, 6, 3, 5]]  # by id, stable within
    firsts = {
        tuple(np.concatenate(query_batches(query, 100, np.random.default_rng(s))).tolist())
        for s in range(10)
    }
    assert len(firsts) > 1  # different seeds, different query orders
    for rows in firsts:
        per_query = {q: [r for r in rows if query[r] == q] for q in (2, 4, 9)}
        assert all(v == sorted(v) for v in per_query.values())
    with pytest.raises(ValueError, match="batch_size"):
        query_batches(query, 0)

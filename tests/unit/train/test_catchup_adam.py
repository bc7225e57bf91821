"""CatchUpAdam: sparse-gradient tables stepped at O(batch) that follow dense Adam, including
the momentum steps of rows that are not in a batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from funnelrec.train.catchup_adam import CatchUpAdam


def _twins(
    rows: int, dim: int, lr: float
) -> tuple[nn.Embedding, nn.Embedding, torch.optim.Adam, CatchUpAdam]:
    torch.manual_seed(0)
    dense, sparse = nn.Embedding(rows, dim), nn.Embedding(rows, dim, sparse=True)
    sparse.weight.data.copy_(dense.weight.data)
    lazy = CatchUpAdam(sparse.parameters(), lr=lr)
    lazy.track(sparse)
    return dense, sparse, torch.optim.Adam(dense.parameters(), lr=lr), lazy


def _step(
    emb: nn.Embedding,
    opt: torch.optim.Optimizer,
    rows: torch.Tensor,
    target: torch.Tensor,
    scale: float,
) -> None:
    opt.zero_grad()
    (scale * ((emb(rows) - target[rows]) ** 2).sum()).backward()
    opt.step()


@pytest.mark.parametrize(
    "pattern", [[1, 0, 0, 0, 0], [1, 1, 0, 0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 0, 1, 0]]
)
def test_missed_steps_are_the_dense_steps(pattern: list[int]) -> None:
    """Row 0 is in the batches marked 1, row 1 in every batch: row 0's table row equals dense
    Adam's after every step it is read and after settle."""
    dense, sparse, adam, lazy = _twins(2, 3, lr=0.1)
    target = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    for touched in pattern:
        rows = torch.tensor([0, 1]) if touched else torch.tensor([1])
        _step(dense, adam, rows, target, 1.0)
        _step(sparse, lazy, rows, target, 1.0)
        if touched:  # row 0 was read (and caught up) this step
            torch.testing.assert_close(sparse.weight[0], dense.weight[0], atol=1e-6, rtol=1e-5)
    lazy.settle()
    torch.testing.assert_close(sparse.weight, dense.weight, atol=1e-6, rtol=1e-5)


def _zipf_gap(catch_up: bool) -> torch.Tensor:
    """``|sparse - dense|`` after 500 rows read with Zipf frequencies over 400 steps (the tail
    rows miss most steps), the sparse table stepped by CatchUpAdam or by SparseAdam."""
    dense, sparse, adam, lazy = _twins(500, 8, lr=1e-2)
    optimizer: torch.optim.Optimizer = lazy
    if not catch_up:
        lazy.release()
        optimizer = torch.optim.SparseAdam(sparse.parameters(), lr=1e-2)
    target = torch.randn(500, 8, generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    popularity = 1.0 / torch.arange(1, 501, dtype=torch.float32)
    for _ in range(400):
        rows = torch.multinomial(popularity, 32, replacement=True, generator=generator)
        _step(dense, adam, rows, target, 1.0)
        _step(sparse, optimizer, rows, target, 1.0)
    lazy.settle()
    return (sparse.weight - dense.weight).detach().abs()


def test_a_zipf_workload_tracks_dense_adam() -> None:
    gap = _zipf_gap(catch_up=True)
    assert float(gap.mean()) < 1e-5 and float(gap.max()) < 1e-3


def test_lazy_sparse_adam_would_not_track_it() -> None:
    """The same workload under SparseAdam: the gap the catch-up closes is real."""
    assert float(_zipf_gap(catch_up=False).mean()) > 1e-3


def test_settle_is_idempotent_and_release_removes_the_hooks() -> None:
    _, sparse, _, lazy = _twins(4, 2, lr=0.1)
    target = torch.zeros(4, 2)
    for rows in (torch.tensor([0, 1]), torch.tensor([2])):
        _step(sparse, lazy, rows, target, 1.0)
    lazy.settle()
    once = sparse.weight.detach().clone()
    lazy.settle()
    assert torch.equal(sparse.weight, once)
    assert sparse._forward_pre_hooks
    lazy.release()
    assert not sparse._forward_pre_hooks


def test_dense_gradients_are_refused() -> None:
    table = nn.Embedding(3, 2)
    optimizer = CatchUpAdam(table.parameters())
    table(torch.tensor([1])).sum().backward()
    with pytest.raises(ValueError, match="sparse gradients"):
        optimizer.step()

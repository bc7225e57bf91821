"""Sparse embedding gradients: CatchUpAdam for sparse tables, dense Adam for the rest, and a
gradient norm / clipping that treat sparse gradients like their dense equivalents."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from funnelrec.train.callbacks import Callback, LoopState
from funnelrec.train.catchup_adam import CatchUpAdam
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.loop import train
from funnelrec.train.optim import (
    OptimizerSet,
    clip_gradients,
    gradient_norm,
    make_optimizer,
    sparse_embedding_parameters,
)


class Tower(nn.Module):
    """A sparse id table (with padding) feeding a dense layer."""

    def __init__(self, sparse: bool) -> None:
        super().__init__()
        self.ids = nn.Embedding(100, 4, padding_idx=99, sparse=sparse)
        self.out = nn.Linear(4, 1)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pred": self.out(self.ids(batch["ids"]).sum(1)).squeeze(-1)}


def mse(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return {"loss": ((outputs["pred"] - batch["y"]) ** 2).mean()}


def twin_models() -> tuple[Tower, Tower]:
    dense, sparse = Tower(sparse=False), Tower(sparse=True)
    sparse.load_state_dict(dense.state_dict())
    return dense, sparse


def backward_both(dense: Tower, sparse: Tower) -> None:
    batch = {"ids": torch.tensor([[1, 2, 2], [3, 99, 1]]), "y": torch.tensor([1.0, -1.0])}
    for model in (dense, sparse):
        mse(model(batch), batch)["loss"].mul(50.0).backward()


def test_dense_models_keep_their_one_dense_optimizer() -> None:
    optimizer = make_optimizer(Tower(sparse=False), TrainLoopConfig())
    assert type(optimizer) is torch.optim.Adam


def test_sparse_tables_get_catch_up_adam_and_the_rest_dense_adam() -> None:
    model = Tower(sparse=True)
    optimizer = make_optimizer(model, TrainLoopConfig(optimizer="adamw", weight_decay=0.1))
    assert isinstance(optimizer, OptimizerSet)
    kinds = [type(m) for m in optimizer.members]
    assert kinds == [torch.optim.AdamW, CatchUpAdam]
    assert optimizer.members[1].param_groups[0]["params"] == [model.ids.weight]
    assert sparse_embedding_parameters(model) == [model.ids.weight]
    assert len(optimizer.param_groups) == 3  # decay + no_decay + the sparse table


def test_norm_and_clipping_of_sparse_gradients_equal_the_dense_ones() -> None:
    dense, sparse = twin_models()
    backward_both(dense, sparse)
    assert sparse.ids.weight.grad is not None and sparse.ids.weight.grad.is_sparse
    dense_grads = [p.grad for p in dense.parameters() if p.grad is not None]
    sparse_grads = [p.grad for p in sparse.parameters() if p.grad is not None]
    total = gradient_norm(sparse_grads)
    torch.testing.assert_close(total, gradient_norm(dense_grads))
    clip_gradients(list(sparse.parameters()), 1.0, total)
    clip_gradients(list(dense.parameters()), 1.0, gradient_norm(dense_grads))
    assert sparse.ids.weight.grad is not None and dense.ids.weight.grad is not None
    torch.testing.assert_close(sparse.ids.weight.grad.to_dense(), dense.ids.weight.grad)
    assert float(gradient_norm([p.grad for p in sparse.parameters()])) <= 1.0 + 1e-5


class Snapshot(Callback):
    """The id table after the first epoch."""

    def __init__(self, model: Tower) -> None:
        self.model = model
        self.after_first: Tensor | None = None

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        if state.epoch == 0:
            self.after_first = self.model.ids.weight.detach().clone()


def rows_moved_after_their_last_batch(sparse: bool) -> tuple[list[int], Tensor]:
    """Epoch 0 trains rows 1, 2, 3; epochs 1-2 only rows 4, 5: which rows move after epoch 0,
    and the final table."""
    torch.manual_seed(0)
    model = Tower(sparse=sparse)
    first = {"ids": torch.tensor([[1, 2], [3, 1]]), "y": torch.tensor([1.0, -1.0])}
    later = {"ids": torch.tensor([[4, 5], [5, 4]]), "y": torch.tensor([0.5, 0.5])}
    snapshot = Snapshot(model)
    config = TrainLoopConfig(epochs=3, lr=0.1)
    train(model, mse, lambda epoch: [first if epoch == 0 else later], config, callbacks=[snapshot])
    assert snapshot.after_first is not None
    moved = (model.ids.weight.detach() != snapshot.after_first).any(dim=1)
    assert not model.ids._forward_pre_hooks  # the loop released the optimizer's lookup hooks
    return moved.nonzero().ravel().tolist(), model.ids.weight.detach()


def test_sparse_tables_keep_moving_on_their_momentum_like_dense_adam() -> None:
    # Dense Adam keeps moving rows 1-3 on their momentum (every row, every step); CatchUpAdam
    # applies those steps when the epoch ends, so the tables agree (SparseAdam would have left
    # rows 1-3 where epoch 0 did).
    dense_moved, dense_table = rows_moved_after_their_last_batch(sparse=False)
    sparse_moved, sparse_table = rows_moved_after_their_last_batch(sparse=True)
    assert dense_moved == sparse_moved == [1, 2, 3, 4, 5]
    torch.testing.assert_close(sparse_table, dense_table, atol=1e-6, rtol=1e-5)

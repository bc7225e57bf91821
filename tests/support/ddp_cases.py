"""Small training runs that must give the same result in one process and under ``torchrun``.

Each case trains from fixed seeds and returns what the distributed tests compare: the loss of
every epoch, a quality metric of the trained model and its trained vectors / predictions.
``tests/support/ddp_worker.py`` runs a case under ``torchrun``; the tests run it in-process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from funnelrec.data.dataset import Dataset
from funnelrec.features.text import TextEncoderConfig
from funnelrec.index import ExactIndexConfig
from funnelrec.rank.models import MMoEConfig, build_rank_model
from funnelrec.rank.models.config import MLPConfig
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig
from funnelrec.recall.base import Queries
from funnelrec.recall.two_tower import HardNegativeConfig, TowerConfig, TwoTower, TwoTowerConfig
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.distributed import is_distributed
from funnelrec.train.loop import train
from support.planted_ranking import SPEC, planted

N_USERS, N_ITEMS, PER_USER = 60, 40, 10


def taste_groups(seed: int = 0) -> Dataset:
    """Users 0..29 click "alpha" items (0..19), users 30..59 "beta" items (20..39)."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(N_USERS):
        pool = np.arange(20) if u < N_USERS // 2 else np.arange(20, 40)
        users += [u] * PER_USER
        items += rng.choice(pool, PER_USER, replace=False).tolist()
        times += (1000 + u + 100 * np.arange(PER_USER)).tolist()
    n = len(users)
    inter = pl.DataFrame(
        {
            "user_id": np.array(users, dtype=np.int64),
            "item_id": np.array(items, dtype=np.int64),
            "timestamp": np.array(times, dtype=np.int64),
            "event": ["click"] * n,
            "value": np.ones(n, dtype=np.float32),
        }
    )
    item_table = pl.DataFrame(
        {
            "item_id": np.arange(N_ITEMS, dtype=np.int64),
            "category": ["alpha" if i < 20 else "beta" for i in range(N_ITEMS)],
            "created_at": np.arange(N_ITEMS, dtype=np.int64) * 10,
            "title": [("alpha red" if i < 20 else "beta blue") + f" {i}" for i in range(N_ITEMS)],
        }
    )
    return Dataset.build(inter, item_table)


def two_tower_config(sparse: bool = False) -> TwoTowerConfig:
    """Uniform and hard negatives, id dropout and text: every part of a batch is sharded."""
    return TwoTowerConfig(
        k=5,
        device="cpu",
        text=TextEncoderConfig(kind="hashing", dim=8),
        towers=TowerConfig(
            dim=16, embed_dim=16, hidden=(32,), history_len=5, sparse_embeddings=sparse
        ),
        index=ExactIndexConfig(),
        batch_size=61,  # 600 examples: 9 batches of 61 and one of 51; 61 splits 30 / 31
        n_uniform_negatives=16,
        id_dropout=0.1,
        hard_negatives=HardNegativeConfig(sources=("category",), easy_hard_ratio=20.0),
        train=TrainLoopConfig(epochs=4, lr=0.01),
    )


def replica_gap(module: torch.nn.Module) -> float:
    """The largest difference between this worker's parameters and rank 0's, over every
    worker (0.0 in one process): DDP replicas must stay equal."""
    if not is_distributed():
        return 0.0
    gap = torch.zeros(())
    for param in module.parameters():
        first = param.detach().clone()
        torch.distributed.broadcast(first, 0)
        gap = torch.maximum(gap, (param.detach() - first).abs().max())
    torch.distributed.all_reduce(gap, op=torch.distributed.ReduceOp.MAX)
    return float(gap)


def two_tower_case(sparse: bool = False) -> dict[str, Any]:
    """Fit the two-tower; the share of each user's top 5 that is in its own taste group."""
    data = taste_groups()
    model = TwoTower(two_tower_config(sparse)).fit(data, rng=np.random.default_rng(0))
    users = data.user_vocab.encode(pl.Series(range(N_USERS), dtype=pl.Int64))
    queries = Queries.from_history(
        np.arange(N_USERS), users, np.full(N_USERS, data.as_of), data.positives
    )
    top = model.retrieve(queries, 5).item_idx
    item_ids = data.item_vocab.decode(top.ravel()).to_numpy().reshape(top.shape)
    user_alpha = np.arange(N_USERS)[:, None] < N_USERS // 2
    in_group = (item_ids < 20) == user_alpha
    assert model.train_result is not None
    return {
        "epoch_loss": [e["loss"] for e in model.train_result.epochs],
        "metric": float(in_group.mean()),
        "vectors": model.item_vectors.tolist(),
        "samples": model.train_result.samples,
        "replica_gap": replica_gap(model.model),
    }


def mmoe_case(n_train: int = 1000, batch_size: int = 127) -> dict[str, Any]:
    """Train the default ranker model (MMoE) with learnt uncertainty weights; test AUCs."""
    torch.manual_seed(0)
    network = build_rank_model(MMoEConfig(expert=MLPConfig(hidden=(32, 16))), SPEC)
    task = MultiTaskLoss(MultiTaskLossConfig(tasks=("click", "buy"), uncertainty=True))
    data = planted(n_train, seed=1)

    def batches(epoch: int) -> list[dict[str, Tensor]]:
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(epoch))
        return [
            {k: v[order[s : s + batch_size]] for k, v in data.items()}
            for s in range(0, n_train, batch_size)
        ]

    result = train(network, task, batches, TrainLoopConfig(epochs=3, lr=0.01))
    test = planted(500, seed=2)
    with torch.no_grad():
        out = network(test)
    return {
        "epoch_loss": [e["loss"] for e in result.epochs],
        "metric": float(roc_auc_score(test["label_click"].numpy(), out["click"].numpy())),
        "vectors": out["buy"].tolist(),
        "samples": result.samples,
        "replica_gap": replica_gap(network),
    }


CASES = {
    "two_tower": two_tower_case,
    "two_tower_sparse": lambda: two_tower_case(sparse=True),
    "mmoe": mmoe_case,
}

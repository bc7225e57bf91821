"""A planted ranking signal the models must learn: shared by the ranking models' training tests
and the DDP cases (tests/support/ddp_cases.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from funnelrec.features.spec import FeatureSpec

SPEC = FeatureSpec(
    ("user", "item", "category", "context"), (30, 61, 9, 5), 3, 8, 1, 2, ("click", "buy")
)


def planted(n: int, seed: int) -> dict[str, Tensor]:
    """click depends on the item (even ids are good) and dense[0]; buy = click AND a draw that
    depends on dense[1] (entire-space labels, as ESMM expects)."""
    rng = np.random.default_rng(seed)
    cards = SPEC.sparse_cardinalities
    sparse = np.stack([rng.integers(1, c, n) for c in cards], axis=1)
    sparse[:, 2] = 1 + sparse[:, 1] % 8  # category is a function of the item
    dense = rng.normal(size=(n, SPEC.n_dense)).astype(np.float32)
    good = np.where(sparse[:, 1] % 2 == 0, 1.0, -1.0)
    click = rng.random(n) < 1 / (1 + np.exp(-(2.0 * good + 1.5 * dense[:, 0])))
    convert = rng.random(n) < 1 / (1 + np.exp(-(2.5 * dense[:, 1])))
    seq = rng.integers(0, cards[1], (n, SPEC.seq_len))
    return {
        "sparse": torch.from_numpy(sparse),
        "dense": torch.from_numpy(dense),
        "seq_item": torch.from_numpy(seq),
        "seq_category": torch.from_numpy(np.where(seq > 0, 1 + seq % 8, 0)),
        "seq_gap": torch.zeros(n, SPEC.seq_len),
        "label_click": torch.from_numpy(click.astype(np.float32)),
        "label_buy": torch.from_numpy((click & convert).astype(np.float32)),
    }

"""Training SASRec: sequences -> windows -> the shared loop, early stopping on held-out items.

Kept apart from the retriever so that :mod:`.retriever` is only serving and state. All
randomness comes from ``config.seed``: the NumPy generator shuffles windows and draws the
uniform negatives, a ``torch.Generator`` initialises the parameters, and dropout runs on a
forked, seeded torch RNG (:func:`funnelrec.train.seeding.forked_seed`), so fitting twice
gives the same model and the caller's random state is untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from funnelrec.data.dataset import Dataset
from funnelrec.errors import MissingInputError
from funnelrec.recall.sasrec.config import SASRecConfig
from funnelrec.recall.sasrec.data import (
    Sequences,
    assemble_batch,
    hold_out_last,
    training_windows,
    user_sequences,
)
from funnelrec.recall.sasrec.model import SASRecModel, pad_id
from funnelrec.recall.sasrec.task import SequenceSoftmaxTask
from funnelrec.recall.two_tower.data import last_items
from funnelrec.recall.two_tower.model import init_parameters
from funnelrec.recall.two_tower.sampling import uniform_negatives
from funnelrec.train.loop import Callback, EarlyStopping, KeepBest, TrainResult, train
from funnelrec.train.seeding import forked_seed
from funnelrec.train.threads import torch_threads

logger = logging.getLogger(__name__)

VALID_K = 10
"""Cut-off of the validation metrics (``valid_hit@10``, ``valid_ndcg@10``)."""


@dataclass(frozen=True)
class Validation:
    """Held-out next items: ``seq [V, L]`` right-aligned histories, ``target [V]``."""

    seq: NDArray[np.int64]
    target: NDArray[np.int64]

    @classmethod
    def of(
        cls, history: Sequences, target: NDArray[np.int64], max_len: int, pad: int
    ) -> Validation:
        """From the held-out rows' remaining items and their held-out item."""
        seq = last_items(history.item, history.ptr[:-1], history.ptr[1:], max_len, pad)
        return cls(seq, target)


@torch.no_grad()
def validation_metrics(
    model: SASRecModel, valid: Validation, exclude_seen: bool, batch_size: int
) -> dict[str, float]:
    """HR@10 and NDCG@10 of the held-out items, ranked against the whole catalogue.

    Scores are the serving scores (inner product of the last position's output with every
    item), the history excluded when the channel excludes it, so early stopping watches
    what retrieval will return.
    """
    device = model.item.weight.device
    weight = model.item.weight  # [N + 1, D]: the padding row is masked with the history
    hits, gains = 0.0, 0.0
    for start in range(0, valid.target.shape[0], batch_size):
        seq = torch.from_numpy(valid.seq[start : start + batch_size]).to(device)
        target = torch.from_numpy(valid.target[start : start + batch_size]).to(device)
        scores = model.user(seq) @ weight.T
        if exclude_seen:
            scores = scores.scatter(1, seq, float("-inf"))
        scores[:, model.n_items] = float("-inf")
        rank = (scores > scores.gather(1, target[:, None])).sum(dim=1).float()
        hit = rank < VALID_K
        hits += float(hit.sum())
        gains += float(torch.where(hit, 1.0 / torch.log2(rank + 2.0), 0.0).sum())
    n = max(valid.target.shape[0], 1)
    return {f"valid_hit@{VALID_K}": hits / n, f"valid_ndcg@{VALID_K}": gains / n}


def _batches(
    config: SASRecConfig,
    windows: tuple[NDArray[np.int64], NDArray[np.int64]],
    counts: NDArray[np.int64],
    rng: np.random.Generator,
) -> Iterator[dict[str, Tensor]]:
    """One epoch: shuffled windows, fresh uniform negatives per batch."""
    inputs, targets = windows
    n_items = counts.shape[0]
    order = rng.permutation(inputs.shape[0])
    for start in range(0, order.shape[0], config.batch_size):
        rows = order[start : start + config.batch_size]
        uniform = uniform_negatives(n_items, config.n_uniform_negatives, rng)
        yield assemble_batch(inputs[rows], targets[rows], uniform, counts, pad_id(n_items))


def fit_model(
    config: SASRecConfig, data: Dataset, device: torch.device
) -> tuple[SASRecModel, TrainResult, dict[str, float]]:
    """Train a :class:`SASRecModel` on ``data``'s positives.

    Returns:
        The model (eval mode, on ``device``, best validation epoch when validating), the
        loop's result and stats (``train_windows``, ``train_targets``, ``valid_users``,
        ``best_epoch``, ``valid_ndcg@10``).

    Raises:
        MissingInputError: fewer than 2 training targets (no user with 2 distinct items).
    """
    n_items = data.n_items
    pad = pad_id(n_items)
    rng = np.random.default_rng(config.seed)
    train_seqs, valid_hist, valid_target = hold_out_last(
        user_sequences(data), config.valid_users, rng
    )
    windows = training_windows(train_seqs, config.max_len, pad)
    real = windows[1][windows[1] != pad]
    if real.shape[0] < 2:
        raise MissingInputError(
            f"sasrec channel: {real.shape[0]} training target(s); it needs users with 2+ items"
        )
    counts = np.bincount(real, minlength=n_items).astype(np.int64)
    valid = Validation.of(valid_hist, valid_target, config.max_len, pad)
    with forked_seed(config.seed, device), torch_threads(config.fit_threads):
        model = SASRecModel(config, n_items)
        init_parameters(model, torch.Generator().manual_seed(config.seed))
        model.to(device)
        keep = KeepBest(model, f"valid_ndcg@{VALID_K}", "max")
        validating = valid.target.shape[0] > 0  # none held out: every epoch
        callbacks: list[Callback] = [
            keep,
            EarlyStopping(f"valid_ndcg@{VALID_K}", "max", config.patience),
        ]

        def evaluate(module: nn.Module, epoch: int) -> dict[str, float]:
            return validation_metrics(
                model, valid, config.exclude_seen, config.inference_batch_size
            )

        result = train(
            model,
            SequenceSoftmaxTask(logq_correction=config.logq_correction),
            lambda epoch: _batches(config, windows, counts, rng),
            config.train,
            device=device,
            callbacks=callbacks if validating else [],
            evaluate=evaluate if validating else None,
        )
    keep.restore()
    model.eval()
    stats = {
        "train_windows": float(windows[0].shape[0]),
        "train_targets": float(real.shape[0]),
        "valid_users": float(valid.target.shape[0]),
        "best_epoch": float(keep.best_epoch),
        f"valid_ndcg@{VALID_K}": keep.best,
    }
    logger.info("sasrec fit: %s", stats)
    return model, result, stats

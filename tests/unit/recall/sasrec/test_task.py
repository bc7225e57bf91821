"""The SASRec loss is the two-tower's sampled softmax, computed over distinct targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from funnelrec.recall.sasrec.data import assemble_batch
from funnelrec.recall.sasrec.task import SequenceSoftmaxTask
from funnelrec.recall.two_tower.sampling import item_log_q
from funnelrec.recall.two_tower.task import SampledSoftmaxTask

N_ITEMS, DIM, PAD = 12, 6, 12


def random_case(
    seed: int, counts: np.ndarray | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """A batch of 3 windows whose targets repeat items, 5 uniform negatives (one may equal a
    target), random item embeddings and hidden states."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 4, (3, 4))  # few distinct items: many duplicates
    targets[0, :2] = PAD  # a short window
    inputs = np.where(targets == PAD, PAD, rng.integers(0, N_ITEMS, (3, 4)))
    uniform = rng.integers(0, N_ITEMS, 5)
    counts = rng.integers(1, 20, N_ITEMS) if counts is None else counts
    batch = assemble_batch(inputs, targets, uniform, counts, PAD)
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(N_ITEMS + 1, DIM, generator=gen)
    h = torch.randn(batch["positions"].shape[0], DIM, generator=gen)
    return batch, emb, h


def outputs(batch: dict[str, torch.Tensor], emb: torch.Tensor, h: torch.Tensor) -> dict:
    return {"candidates": h @ emb[batch["cand_item"]].T}


def uniform_part(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    n_distinct = int(batch["target"].max()) + 1  # every distinct target is some row's target
    return batch["cand_item"][n_distinct:]


@pytest.mark.parametrize("logq", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_the_two_tower_loss_over_every_target_copy(seed: int, logq: bool) -> None:
    batch, emb, h = random_case(seed)
    ours = SequenceSoftmaxTask(logq_correction=logq)(outputs(batch, emb, h), batch)["loss"]
    # The two-tower's view: one column per target position (duplicates included).
    items = batch["cand_item"][batch["target"]]
    uniform = uniform_part(batch)
    assert uniform.shape == (5,)
    expanded = {
        "in_batch": h @ emb[items].T,
        "uniform": h @ emb[uniform].T,
        "hard": torch.zeros(items.shape[0], 0),
    }
    log_q = batch["cand_logq"]
    reference_batch = {
        "pos_item": items,
        "pos_logq": log_q[batch["target"]],
        "uniform_item": uniform,
        "uniform_logq": log_q[-5:],
        "hard_item": torch.zeros(items.shape[0], 0, dtype=torch.long),
    }
    reference = SampledSoftmaxTask(logq_correction=logq)(expanded, reference_batch)["loss"]
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)


def test_logq_is_the_expected_count_among_sampled_candidates() -> None:
    counts = np.arange(1, N_ITEMS + 1)
    batch, _, _ = random_case(0, counts)
    n_targets = batch["positions"].shape[0]
    expected = item_log_q(counts, n_targets, 5)
    assert np.allclose(batch["cand_logq"].numpy(), expected[batch["cand_item"].numpy()])


def test_logq_subtracts_log_q_from_every_sampled_column() -> None:
    batch, emb, h = random_case(1)
    out = outputs(batch, emb, h)
    with_q = SequenceSoftmaxTask(logq_correction=True).logits(out, batch)
    without = SequenceSoftmaxTask(logq_correction=False).logits(out, batch)
    q = batch["cand_logq"]
    finite = without > torch.finfo(without.dtype).min
    diff = (without - with_q)[finite]
    assert torch.allclose(diff, q.expand_as(without)[finite], atol=1e-5)


def test_a_uniform_negative_equal_to_the_target_is_masked() -> None:
    pad = 9
    targets = np.array([[4, 7, 4]])
    batch = assemble_batch(targets, targets, np.array([7, 3, 4]), np.ones(9, np.int64), pad)
    # columns: distinct targets 4, 7, then uniform 7, 3, 4
    assert batch["cand_item"].tolist() == [4, 7, 7, 3, 4]
    hits = sorted(zip(batch["hit_row"].tolist(), batch["hit_col"].tolist(), strict=True))
    assert hits == [(0, 4), (1, 2), (2, 4)]
    out = {"candidates": torch.full((3, 5), 5.0)}
    logits = SequenceSoftmaxTask(logq_correction=False).logits(out, batch)
    floor = torch.finfo(logits.dtype).min
    assert [(r, c) for r, c in zip(*torch.nonzero(logits == floor).T.tolist(), strict=True)] == [
        (0, 4),
        (1, 2),
        (2, 4),
    ]

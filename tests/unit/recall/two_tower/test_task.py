"""The sampled-softmax loss on a handmade batch: logQ correction and accidental-hit masking."""

from __future__ import annotations

import math

import pytest
import torch

from funnelrec.recall.two_tower.task import SampledSoftmaxTask


def handmade() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """3 examples (positives 0, 1, 0), 2 uniform negatives (items 1, 2), 1 hard each."""
    outputs = {
        "in_batch": torch.tensor([[2.0, 1.0, 0.5], [0.0, 1.0, 3.0], [1.0, 0.0, 2.0]]),
        "uniform": torch.tensor([[0.3, 0.1], [0.2, 0.4], [0.0, 0.0]]),
        "hard": torch.tensor([[1.5], [9.0], [7.0]]),
    }
    batch = {
        "pos_item": torch.tensor([0, 1, 0]),
        "pos_logq": torch.tensor([math.log(2.0), math.log(0.5), math.log(2.0)]),
        "uniform_item": torch.tensor([1, 2]),
        "uniform_logq": torch.tensor([math.log(0.5), math.log(0.25)]),
        "hard_item": torch.tensor([[2], [-1], [0]]),
    }
    return outputs, batch


def nll(target: float, others: list[float]) -> float:
    return -target + math.log(math.exp(target) + sum(math.exp(o) for o in others))


def test_logq_correction_and_accidental_hits_by_hand() -> None:
    outputs, batch = handmade()
    lq0, lq1, lq2 = math.log(2.0), math.log(0.5), math.log(0.25)
    # Row 0 (item 0): column 2 is item 0 again -> masked; uniform 1, 2 kept; hard item 2 kept.
    row0 = nll(2.0 - lq0, [1.0 - lq1, 0.3 - lq1, 0.1 - lq2, 1.5])
    # Row 1 (item 1): uniform item 1 is an accidental hit -> masked; hard is padding -> masked.
    row1 = nll(1.0 - lq1, [0.0 - lq0, 3.0 - lq0, 0.4 - lq2])
    # Row 2 (item 0): in-batch column 0 is item 0 -> masked; hard item 0 -> masked.
    row2 = nll(2.0 - lq0, [0.0 - lq1, 0.0 - lq1, 0.0 - lq2])
    loss = SampledSoftmaxTask(logq_correction=True)(outputs, batch)["loss"]
    assert float(loss) == pytest.approx((row0 + row1 + row2) / 3, rel=1e-6)


def test_without_logq_only_masking_applies() -> None:
    outputs, batch = handmade()
    row0 = nll(2.0, [1.0, 0.3, 0.1, 1.5])
    row1 = nll(1.0, [0.0, 3.0, 0.4])
    row2 = nll(2.0, [0.0, 0.0, 0.0])
    loss = SampledSoftmaxTask(logq_correction=False)(outputs, batch)["loss"]
    assert float(loss) == pytest.approx((row0 + row1 + row2) / 3, rel=1e-6)


def test_masked_logits_layout_and_no_masking_option() -> None:
    outputs, batch = handmade()
    logits = SampledSoftmaxTask(logq_correction=False).logits(outputs, batch)
    assert logits.shape == (3, 3 + 2 + 1)
    very_negative = logits < -1e30
    assert very_negative.tolist() == [
        [False, False, True, False, False, False],
        [False, False, False, True, False, True],
        [True, False, False, False, False, True],
    ]
    raw = SampledSoftmaxTask(False, mask_accidental_hits=False).logits(outputs, batch)
    assert (raw < -1e30).sum() == 1  # only the padded hard negative


def test_loss_is_differentiable_and_diagnostics_are_scalars() -> None:
    outputs, batch = handmade()
    outputs = {k: v.clone().requires_grad_(True) for k, v in outputs.items()}
    result = SampledSoftmaxTask()(outputs, batch)
    result["loss"].backward()
    grad = outputs["in_batch"].grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad[0, 2] == 0.0  # masked column gets no gradient
    assert result["pos_rank_in_batch"].ndim == 0 and 0 <= float(result["hard_share"]) <= 1


def test_a_shard_of_rows_gets_the_rows_of_the_whole_batch_loss() -> None:
    """A worker's rows (``row_offset``) against all gathered positives: the same logits and
    per-row losses as those rows of the single-process batch."""
    outputs, batch = handmade()
    task = SampledSoftmaxTask()
    whole = task.logits(outputs, batch)
    for lo, hi in [(0, 1), (1, 3)]:
        shard_outputs = {
            "in_batch": outputs["in_batch"][lo:hi],
            "uniform": outputs["uniform"][lo:hi],
            "hard": outputs["hard"][lo:hi],
        }
        shard = {**batch, "hard_item": batch["hard_item"][lo:hi], "row_offset": torch.tensor(lo)}
        torch.testing.assert_close(task.logits(shard_outputs, shard), whole[lo:hi])
        per_row = torch.nn.functional.cross_entropy(whole, torch.arange(3), reduction="none")[
            lo:hi
        ].mean()
        torch.testing.assert_close(task(shard_outputs, shard)["loss"], per_row)

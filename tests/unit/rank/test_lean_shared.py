"""The request-shared form of an MMoE: the shared columns' part of the first layers computed
once per batch, equal to the network on batches whose shared columns agree, and never used on
batches where they differ."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.lean import ATOL, OnnxForward, export_onnx, probe_batch
from funnelrec.rank.lean_shared import SharedColumns, SharedExport, export_shared
from funnelrec.rank.models import build_rank_model
from funnelrec.rank.models.config import DeepFMConfig, MMoEConfig

SPEC = FeatureSpec(
    ("user", "item", "category", "age", "hour"),
    (11, 40, 6, 5, 25),
    4,
    5,
    1,
    2,
    ("click", "order"),
    dense_names=("u_pos_all", "i_pos_all", "u_recency", "ev_score"),
)
SHARED = (("user", "age", "hour"), ("u_pos_all", "u_recency"))


def _mmoe() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_rank_model(MMoEConfig(n_experts=3), SPEC).eval()


def _one_request(rows: int) -> dict[str, torch.Tensor]:
    batch = probe_batch(SPEC, rows=rows)
    batch["sparse"][:, [0, 3, 4]] = batch["sparse"][:1, [0, 3, 4]]
    batch["dense"][:, [0, 2]] = batch["dense"][:1, [0, 2]]
    return batch


def _shared_forward(network: torch.nn.Module):
    export, outcome = SharedExport.make(network, SPEC, SPEC.tasks, SHARED)
    assert export is not None, outcome
    assert export.columns == SharedColumns((0, 3, 4), (0, 2))
    full, _ = export_onnx(network, SPEC, SPEC.tasks)
    assert full is not None
    return export.forward(OnnxForward(full, SPEC.tasks))


def test_the_shared_form_reproduces_the_network_on_one_request() -> None:
    network = _mmoe()
    lean = _shared_forward(network)
    batch = _one_request(rows=9)
    batch["sparse"][3, 1] = 0  # an unknown item among the candidates
    with torch.no_grad():
        expected = network(batch)
    got = lean.shared(batch)
    for task in SPEC.tasks:
        assert got[task].shape == (9,)
        torch.testing.assert_close(got[task], expected[task], atol=ATOL, rtol=0)
    assert lean.columns.holds_for(batch["sparse"].numpy(), batch["dense"].numpy())


@pytest.mark.parametrize("column", ["sparse", "dense"])
def test_a_batch_of_several_users_takes_the_full_network(column: str) -> None:
    network = _mmoe()
    lean = _shared_forward(network)
    batch = _one_request(rows=6)
    if column == "sparse":
        batch["sparse"][5, 0] = (batch["sparse"][0, 0] + 1) % 11  # another user
    else:
        batch["dense"][5, 2] += 1.0  # another u_recency
    assert not lean.columns.holds_for(batch["sparse"].numpy(), batch["dense"].numpy())
    with torch.no_grad():
        expected = network(batch)
    wrong = lean.shared(batch)  # what the shared form would say: row 5 read row 0's user
    got = lean(batch)
    assert not np.allclose(wrong["click"][5], expected["click"][5], atol=ATOL)
    for task in SPEC.tasks:
        torch.testing.assert_close(got[task], expected[task], atol=ATOL, rtol=0)


def test_only_an_mmoe_with_shared_columns_has_the_form() -> None:
    torch.manual_seed(0)
    deepfm = build_rank_model(DeepFMConfig(), SPEC).eval()
    model, outcome = export_shared(deepfm, SPEC, SPEC.tasks, SharedColumns((0,), ()))
    assert model is None and "MMoE" in outcome
    model, outcome = export_shared(_mmoe(), SPEC, SPEC.tasks, SharedColumns((), ()))
    assert model is None and "no request-shared columns" in outcome


def test_the_export_round_trips_through_its_state() -> None:
    export, _ = SharedExport.make(_mmoe(), SPEC, SPEC.tasks, SHARED)
    assert export is not None
    again = SharedExport.from_state(export.state())
    assert again == export
    assert SharedExport.from_state({}) is None

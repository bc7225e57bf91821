"""The lean inference path: an ONNX export that ONNX Runtime runs with the network's outputs,
kept only when it reproduces them, and skipped for networks that read behaviour sequences."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.lean import ATOL, OnnxForward, export_onnx, probe_batch
from funnelrec.rank.models import RankModelConfig, build_rank_model

SPEC = FeatureSpec(("user", "item", "category"), (11, 40, 6), 3, 5, 1, 2, ("click", "order"))
ADAPTER: TypeAdapter[RankModelConfig] = TypeAdapter(RankModelConfig)
FLAT_KINDS = ("mmoe", "ple", "shared_bottom", "esmm", "deepfm", "dcn_v2")


def _network(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_rank_model(ADAPTER.validate_python({"kind": kind}), SPEC).eval()


@pytest.mark.parametrize("kind", FLAT_KINDS)
def test_flat_networks_export_and_reproduce_their_logits(kind: str) -> None:
    network = _network(kind)
    model, outcome = export_onnx(network, SPEC, SPEC.tasks)
    assert model is not None, outcome
    assert outcome == "onnxruntime"
    lean = OnnxForward(model, SPEC.tasks)
    batch = probe_batch(SPEC, rows=7)  # another batch size than the export's probe
    batch["sparse"][0] = 0  # padding / unknown codes too
    with torch.no_grad():
        expected = network(batch)
    got = lean(batch)
    for task in SPEC.tasks:
        assert got[task].shape == (7,)
        torch.testing.assert_close(got[task], expected[task], atol=ATOL, rtol=0)


def test_a_sequence_network_keeps_the_eager_path() -> None:
    model, outcome = export_onnx(_network("din"), SPEC, SPEC.tasks)
    assert model is None
    assert "seq_item" in outcome


def test_an_export_that_differs_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def shifted(self: OnnxForward, batch: dict) -> dict:
        return {t: v + 1e-2 for t, v in original(self, batch).items()}

    original = OnnxForward.__call__
    monkeypatch.setattr(OnnxForward, "__call__", shifted)
    model, outcome = export_onnx(_network("mmoe"), SPEC, SPEC.tasks)
    assert model is None and "differs" in outcome

"""Every artifact carries a golden set; serving re-scores it and refuses an artifact that does
not reproduce it, even when its manifest is consistent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from funnelrec.artifacts import GOLDEN_FILE
from funnelrec.cli.app import app
from funnelrec.pipeline.golden import SelfCheckError, self_check
from funnelrec.pipeline.persist import load_golden, load_recommender
from funnelrec.serve.loading import load_for_serving
from support.artifacts import rehash


def _randomise(npz_path: Path, keep: str) -> list[str]:
    """Replace every float array whose name contains ``keep`` with random values."""
    rng = np.random.default_rng(0)
    with np.load(npz_path, allow_pickle=False) as npz:
        state = {k: npz[k] for k in npz.files}
    changed = [k for k, v in state.items() if keep in k and v.dtype.kind == "f" and v.ndim == 2]
    for k in changed:
        state[k] = rng.normal(size=state[k].shape).astype(state[k].dtype)
    np.savez(npz_path, **state)
    return changed


def test_golden_set_is_saved_and_passes(tiny_artifacts: Path) -> None:
    manifest = json.loads((tiny_artifacts / "manifest.json").read_text())
    assert GOLDEN_FILE in manifest["files"]
    golden = load_golden(tiny_artifacts)
    assert golden is not None and len(golden["requests"]) == 32
    assert any(str(r["user_id"]).startswith("__golden_cold_") for r in golden["requests"])
    assert all(len(r["items"]) == golden["k"] for r in golden["requests"])
    result = self_check(load_recommender(tiny_artifacts), golden)
    assert result.ok and result.max_score_diff <= 1e-6


def test_randomised_embeddings_with_a_consistent_manifest_are_refused(
    artifact_copy: Path,
) -> None:
    changed = _randomise(artifact_copy / "rank" / "ranker.npz", "embed")
    changed += _randomise(artifact_copy / "channels" / "two_tower.npz", "history_id")
    assert changed, "no embedding tables found to randomise"
    rehash(artifact_copy)
    load_recommender(artifact_copy)  # the hash check alone cannot tell
    with pytest.raises(SelfCheckError, match=r"self-check failed: \d+/32 golden requests"):
        load_for_serving(artifact_copy)
    result = CliRunner().invoke(app, ["serve", "--artifacts", str(artifact_copy), "--port", "0"])
    assert result.exit_code == 2
    assert "self-check failed" in result.output and "Refusing to serve" in result.output


def test_noisy_scores_are_refused(tiny_artifacts: Path) -> None:
    """What dropout left on does to a ranker: scores that move between calls."""
    import torch

    rec = load_recommender(tiny_artifacts)
    golden = load_golden(tiny_artifacts)
    assert rec.ranker is not None and rec.ranker.network is not None and golden is not None
    generator = torch.Generator().manual_seed(0)

    def noisy(_module, _inputs, out: dict) -> dict:
        return {k: v + torch.randn(v.shape, generator=generator) for k, v in out.items()}

    rec.ranker.network.register_forward_hook(noisy)
    rec.ranker.lean = None  # the eager network, where the hook runs (not its ONNX export)
    with pytest.raises(SelfCheckError, match="self-check failed"):
        self_check(rec, golden)


def test_artifact_without_golden_set_is_refused_with_a_way_out(artifact_copy: Path) -> None:
    (artifact_copy / GOLDEN_FILE).unlink()
    manifest = json.loads((artifact_copy / "manifest.json").read_text())
    del manifest["files"][GOLDEN_FILE]
    (artifact_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SelfCheckError, match="no golden set.*--no-self-check"):
        load_for_serving(artifact_copy)
    assert load_for_serving(artifact_copy, check=False).check is None

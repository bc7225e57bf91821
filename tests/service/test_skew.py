"""Training/serving skew is caught: a feature value changed on the served path shows in the
consistency replay, and a ranker run in training mode (dropout on) fails the golden
self-check and the replay. Both pass every hash check: only re-scoring can tell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.golden import SelfCheckError, self_check
from funnelrec.pipeline.persist import load_golden, load_recommender
from funnelrec.rank.models import build_rank_model
from funnelrec.rank.ranker import Ranker
from funnelrec.serve.app import create_app
from funnelrec.serve.consistency import ConsistencyReport, replay_feature_log


def _with_dropout(ranker: Ranker, rate: float) -> Ranker:
    """The same weights in a network with dropout layers: identical scores in eval mode."""
    assert ranker.network is not None and ranker.features is not None
    model = ranker.config.model
    deep = model.deep.model_copy(update={"dropout": rate})  # type: ignore[union-attr]
    network = build_rank_model(model.model_copy(update={"deep": deep}), ranker.features.spec)
    # Dropout layers shift the Sequential's indices, not the order or shapes of the weights.
    weights = ranker.network.state_dict().values()
    network.load_state_dict(dict(zip(network.state_dict(), weights, strict=True)))
    copy = Ranker.from_state(ranker.config, ranker.state())
    copy.network = network.eval()
    # The eager path, where a module left in training mode can leak into serving; the ONNX
    # path (rank/lean.py) runs a graph exported in eval mode, with no dropout left in it.
    copy.lean = None
    return copy


def _serve_and_replay(service: Any, tiny_artifacts: Path) -> ConsistencyReport:
    """Recommend for a few known users (the ranker scores them), then replay the log against
    the unmodified artifact."""
    users = service.model.recommender.user_vocab.ids.head(8).to_list()
    with TestClient(create_app(service.settings, service)) as client:
        for user in users:
            r = client.post("/v1/recommend", json={"user_id": str(user), "k": 10})
            assert r.status_code == 200, r.text
            assert r.json()["degraded"] == []
    service.feature_log.flush()
    return replay_feature_log(tiny_artifacts, service.settings.feature_log_path)


def test_a_skewed_feature_is_reported_by_the_replay(
    make_service: Any, tiny_artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service()
    features = service.model.recommender.ranker.features
    transform = features.transform

    def skewed(samples: Any, log: Any) -> Any:
        x = transform(samples, log)
        x.dense[:, 0] += 3.0  # one feature computed differently online (a unit, a window)
        return x

    monkeypatch.setattr(features, "transform", skewed)
    report = _serve_and_replay(service, tiny_artifacts)
    assert report.replayed > 0 and not report.ok
    columns = {m.column for m in report.mismatches}
    assert any(c.startswith("p_") for c in columns), columns  # the ranker's stage diverged
    assert not any(c in ("source", "merged_rank") for c in columns)  # recall did not


def _force_training_mode(ranker: Ranker) -> None:
    """Dropout active on every forward pass: what a serving path that skipped ``eval()``
    would run (``Ranker`` itself switches to eval mode before predicting)."""
    assert ranker.network is not None

    def train_mode(module: torch.nn.Module, _inputs: Any) -> None:
        module.train()

    ranker.network.register_forward_pre_hook(train_mode)


def test_the_ranker_predicts_in_eval_mode_even_when_left_in_training_mode(
    tiny_artifacts: Path,
) -> None:
    recommender: Funnel = load_recommender(tiny_artifacts)
    golden = load_golden(tiny_artifacts)
    assert isinstance(recommender.ranker, Ranker) and recommender.rank_log is not None
    assert golden is not None
    ranker = _with_dropout(recommender.ranker, 0.5)
    recommender.set_ranker(ranker, recommender.rank_log)
    assert ranker.network is not None
    ranker.network.train()
    self_check(recommender, golden)  # predict() switched dropout off: the golden set passes
    _force_training_mode(ranker)
    with pytest.raises(SelfCheckError, match="self-check failed"):
        self_check(recommender, golden)


def test_a_ranker_in_training_mode_is_reported_by_the_replay(
    make_service: Any, tiny_artifacts: Path
) -> None:
    service = make_service()
    recommender = service.model.recommender
    ranker = _with_dropout(recommender.ranker, 0.5)
    _force_training_mode(ranker)
    recommender.set_ranker(ranker, recommender.rank_log)
    report = _serve_and_replay(service, tiny_artifacts)
    assert not report.ok
    assert any(m.column.startswith("p_") for m in report.mismatches)

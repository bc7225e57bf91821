"""RankConfig: the list objectives, where they apply, and what their outputs are."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from funnelrec.rank.config import RankConfig, RankTrainConfig, check_objective
from funnelrec.rank.gbdt_config import LightGBMConfig
from funnelrec.rank.models.config import ESMMConfig


def test_list_objectives_are_accepted_and_output_scores() -> None:
    lambdarank = RankConfig(model={"kind": "lightgbm", "objective": "lambdarank"})
    assert isinstance(lambdarank.model, LightGBMConfig)
    assert lambdarank.model.objective == "lambdarank"
    listwise = RankConfig(model={"kind": "mmoe"}, train={"loss": "listwise"})
    assert listwise.train.loss == "listwise"
    assert not lambdarank.outputs_probabilities and not listwise.outputs_probabilities
    assert RankConfig().outputs_probabilities
    assert RankConfig(model={"kind": "lightgbm"}).outputs_probabilities
    assert RankConfig().train.loss == "pointwise"


def test_listwise_is_refused_for_esmm_and_lightgbm() -> None:
    with pytest.raises(ValidationError, match="ESMM"):
        RankConfig(model={"kind": "esmm"}, train={"loss": "listwise"})
    with pytest.raises(ValidationError, match="objective='lambdarank'"):
        RankConfig(model={"kind": "lightgbm"}, train={"loss": "listwise"})
    with pytest.raises(ValidationError):
        RankTrainConfig(loss="pairwise")  # type: ignore[arg-type]
    # model_copy(update=...) skips validation: the ranker calls the same check at fit time.
    sneaky = RankConfig(train={"loss": "listwise"}).model_copy(update={"model": ESMMConfig()})
    with pytest.raises(ValueError, match="ESMM"):
        check_objective(sneaky.model, sneaky.train)

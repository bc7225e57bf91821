"""The scenario as a sparse ranking field: codes, the appended field, persistence."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.features.behaviours import DenseSequences
from funnelrec.features.scenario import SCENARIO_FIELD, ScenarioVocab, scenario_field
from funnelrec.features.spec import FeatureSpec, RankFeatures


def _features(n: int) -> RankFeatures:
    spec = FeatureSpec(("user", "item"), (4, 6), 1, 2, 1, 1, ("click",))
    seq = DenseSequences(
        np.zeros((n, 2), np.int64), np.zeros((n, 2), np.int64), np.zeros((n, 2), np.float32)
    )
    return RankFeatures(
        spec,
        np.ones((n, 2), np.int64),
        np.zeros((n, 1), np.float32),
        seq,
        {"click": np.zeros(n, np.float32)},
        np.arange(n),
        np.zeros(n, np.int64),
    )


def test_codes_start_at_one_and_unknown_is_zero() -> None:
    vocab = ScenarioVocab.fit(pl.DataFrame({"scenario": ["search", None, "feed", "feed"]}))
    assert vocab.names == ("feed", "search") and vocab.cardinality == 3
    codes = vocab.encode(pl.DataFrame({"scenario": ["feed", "search", "detail", None]}))
    assert codes.tolist() == [1, 2, 0, 0]


def test_samples_without_a_scenario_column_are_one_unknown_scenario() -> None:
    vocab = ScenarioVocab.fit(pl.DataFrame({"item_idx": [1, 2]}))
    assert vocab.cardinality == 1
    assert vocab.encode(pl.DataFrame({"scenario": ["a"]})).tolist() == [0]


def test_the_field_is_appended_and_found_by_name() -> None:
    samples = pl.DataFrame({"scenario": ["b", "a", "b"]})
    vocab = ScenarioVocab.fit(samples)
    x = vocab.add_field(_features(3), samples)
    assert x.spec.sparse_names[-1] == SCENARIO_FIELD and x.spec.sparse_cardinalities[-1] == 3
    assert scenario_field(x.spec) == 2 and x.sparse[:, 2].tolist() == [2, 1, 2]
    with pytest.raises(ValueError, match="already"):
        vocab.add_field(x, samples)
    with pytest.raises(ValueError, match="samples for"):
        vocab.add_field(_features(2), samples)


def test_state_round_trips() -> None:
    vocab = ScenarioVocab(("feed", "search"))
    assert ScenarioVocab.from_state(vocab.state()).names == vocab.names
    assert ScenarioVocab.from_state(ScenarioVocab(()).state()).names == ()

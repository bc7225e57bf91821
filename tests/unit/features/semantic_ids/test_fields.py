"""Semantic-id prefixes as ranking fields: values, new items, item columns, state."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from funnelrec.data.dataset import Dataset
from funnelrec.errors import MissingInputError
from funnelrec.features.semantic_ids.fields import SemanticFieldsConfig, SemanticItemFields

TITLES = ["space war", "space war two", "space station", "bread baking", "baking bread", ""]
CFG = SemanticFieldsConfig(
    ids={"kind": "rq_kmeans", "levels": 2, "codebook_size": 2},
    encoder={"kind": "hashing", "dim": 8},
    prefixes=(1, 2),
)


def _data() -> Dataset:
    inter = pl.DataFrame(
        {"user_id": [1], "item_id": [0], "timestamp": [0], "event": ["click"], "value": [1.0]}
    )
    items = pl.DataFrame({"item_id": np.arange(6), "title": TITLES})
    return Dataset.build(inter, items)


def test_values_follow_the_sparse_field_convention() -> None:
    fields = SemanticItemFields(CFG).fit(_data())
    assert fields.names == ("sid_1", "sid_2")
    assert fields.values.shape == (6, 2)
    assert fields.values[5].tolist() == [0, 0]  # no text: unknown
    assert (fields.values[:5] >= 1).all()
    assert all(fields.values[:, f].max() < c for f, c in enumerate(fields.cardinalities))
    # The two topics split at the first level.
    space, bread = fields.values[:3, 0], fields.values[3:5, 0]
    assert len(set(space)) == 1 and len(set(bread)) == 1 and space[0] != bread[0]


def test_new_items_get_values_from_their_text_and_columns_are_numeric() -> None:
    fields = SemanticItemFields(CFG).fit(_data())
    new = pl.DataFrame({"item_id": [90, 91, 92], "title": ["war in space", "bread", None]})
    values = fields.encode_items(new)
    assert values[0, 0] == fields.values[0, 0] and values[1, 0] == fields.values[3, 0]
    assert values[2].tolist() == [0, 0]
    out = fields.with_columns(new)
    assert out.schema["sid_1"] == pl.Int64 and out["sid_2"].to_list() == values[:, 1].tolist()


def test_state_round_trip() -> None:
    fields = SemanticItemFields(CFG).fit(_data())
    again = SemanticItemFields.from_state(CFG, fields.state())
    new = pl.DataFrame({"item_id": [90], "title": ["space war"]})
    assert np.array_equal(again.values, fields.values)
    assert np.array_equal(again.encode_items(new), fields.encode_items(new))


def test_errors() -> None:
    with pytest.raises(ValidationError, match="prefixes"):
        SemanticFieldsConfig(prefixes=(2, 1))
    with pytest.raises(ValidationError, match="prefixes"):
        SemanticFieldsConfig(prefixes=(1, 4))  # rq_kmeans has 3 levels by default
    inter = pl.DataFrame(
        {"user_id": [1], "item_id": [0], "timestamp": [0], "event": ["click"], "value": [1.0]}
    )
    with pytest.raises(MissingInputError, match="items table"):
        SemanticItemFields(CFG).fit(Dataset.build(inter))
    with pytest.raises(RuntimeError, match="not fitted"):
        SemanticItemFields(CFG).encode_items(pl.DataFrame({"item_id": [1], "title": ["x"]}))

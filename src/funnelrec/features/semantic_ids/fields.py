"""Semantic-id prefixes as sparse item fields for the ranker (opt-in).

Each configured prefix length ``p`` becomes one categorical field ``sid_<p>``: items whose
codes agree on their first ``p`` levels share its value. Unlike the item id, a new item gets
real values at once (its text is coded by the fitted encoder and ids), so the ranker's
embeddings for these fields carry what similar items taught it. Values follow the
:class:`~funnelrec.features.spec.FeatureSpec` convention: 0 = unknown (no text, or a prefix
no fitted item had), real values from 1.
"""

from __future__ import annotations

import dataclasses
from typing import Self

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from funnelrec.data.dataset import Dataset
from funnelrec.data.state import prefixed
from funnelrec.errors import MissingInputError
from funnelrec.features.semantic_ids import (
    RQKMeansConfig,
    SemanticIdConfig,
    SemanticIds,
    build_semantic_ids,
    prefix_keys,
    semantic_ids_from_state,
)
from funnelrec.features.spec import FeatureSpec, RankFeatures
from funnelrec.features.text import TextEncoder, TextEncoderConfig, item_text


class SemanticFieldsConfig(BaseModel):
    """Which semantic-id prefixes become ranking fields, and how the ids are made.

    Example:
        >>> SemanticFieldsConfig(prefixes=(1, 2, 3)).field_names
        ('sid_1', 'sid_2', 'sid_3')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    ids: SemanticIdConfig = Field(default_factory=RQKMeansConfig, description="The ids.")
    encoder: TextEncoderConfig = Field(
        default_factory=TextEncoderConfig, description="Item text -> content embedding."
    )
    text_columns: tuple[str, ...] | None = Field(
        None, description="Item columns forming the text (None = title, category, ...)."
    )
    prefixes: tuple[int, ...] = Field(
        (1, 2), description="Prefix lengths that become fields (1 = the first level's code)."
    )

    @model_validator(mode="after")
    def _prefixes_in_range(self) -> SemanticFieldsConfig:
        p = self.prefixes
        if not p or list(p) != sorted(set(p)) or p[0] < 1 or p[-1] > self.ids.levels:
            raise ValueError(
                f"prefixes must be increasing lengths in 1..{self.ids.levels} (the ids' "
                f"levels), got {p}"
            )
        return self

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f"sid_{p}" for p in self.prefixes)


class SemanticItemFields:
    """Fitted item fields (see the module docstring and :class:`SemanticFieldsConfig`).

    Example:
        >>> inter = pl.DataFrame({"user_id": [1], "item_id": [0], "timestamp": [0],
        ...     "event": ["click"], "value": [1.0]})
        >>> items = pl.DataFrame({"item_id": [0, 1, 2],
        ...     "title": ["space war", "space war again", "bread"]})
        >>> cfg = SemanticFieldsConfig(ids={"kind": "rq_kmeans", "levels": 2,
        ...     "codebook_size": 2}, encoder={"kind": "hashing", "dim": 4})
        >>> fields = SemanticItemFields(cfg).fit(Dataset.build(inter, items))
        >>> fields.values.shape, fields.cardinalities
        ((3, 2), (3, 4))
    """

    def __init__(self, config: SemanticFieldsConfig) -> None:
        self.config = config
        self.encoder = TextEncoder(config.encoder)
        self.ids: SemanticIds | None = None
        self.vocab: tuple[NDArray[np.int64], ...] = ()  # sorted prefix keys per field
        self.values: NDArray[np.int64] = np.zeros((0, len(config.prefixes)), dtype=np.int64)

    @property
    def names(self) -> tuple[str, ...]:
        return self.config.field_names

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Values per field, 0 (unknown) included."""
        return tuple(v.shape[0] + 1 for v in self.vocab)

    def fit(self, data: Dataset) -> Self:
        """Embed the training items' text, fit the ids, and number the prefixes seen.

        Returns:
            self, with ``values [n_items, P]`` (0 for items without a row or text).
        """
        if data.items is None:
            raise MissingInputError("semantic-id fields need an items table with text")
        texts = item_text(data.items, self.config.text_columns)
        self.encoder = TextEncoder(self.config.encoder).fit(texts)
        vectors = self.encoder.encode(texts)
        has = np.abs(vectors).sum(axis=1) > 0
        if not has.any():
            raise MissingInputError("semantic-id fields: no item has any text to embed")
        self.ids = build_semantic_ids(self.config.ids).fit(vectors[has])
        keys = prefix_keys(self.ids.encode(vectors[has]), self.ids.sizes)
        columns = [p - 1 for p in self.config.prefixes]
        self.vocab = tuple(np.unique(keys[:, c]) for c in columns)
        self.values = np.zeros((data.n_items, len(columns)), dtype=np.int64)
        rows = data.items["item_idx"].to_numpy()[has]
        self.values[rows] = self._number(keys)
        return self

    def _number(self, keys: NDArray[np.int64]) -> NDArray[np.int64]:
        """``[M, L]`` prefix keys -> ``[M, P]`` field values (0 = a prefix not in the vocab)."""
        out = np.zeros((keys.shape[0], len(self.vocab)), dtype=np.int64)
        for f, (p, vocab) in enumerate(zip(self.config.prefixes, self.vocab, strict=True)):
            j = np.minimum(np.searchsorted(vocab, keys[:, p - 1]), vocab.shape[0] - 1)
            out[:, f] = np.where(vocab[j] == keys[:, p - 1], j + 1, 0)
        return out

    def encode_items(self, items: pl.DataFrame) -> NDArray[np.int64]:
        """Field values of any items (new ones included) from their text: ``[M]`` rows ->
        ``[M, P]`` int64, 0 where the text is empty or the prefix was never fitted."""
        if self.ids is None:
            raise RuntimeError("SemanticItemFields is not fitted: call fit() or from_state()")
        vectors = self.encoder.encode(item_text(items, self.config.text_columns))
        has = np.abs(vectors).sum(axis=1) > 0
        out = np.zeros((items.height, len(self.vocab)), dtype=np.int64)
        out[has] = self._number(prefix_keys(self.ids.encode(vectors[has]), self.ids.sizes))
        return out

    def extend_spec(self, spec: FeatureSpec) -> FeatureSpec:
        """``spec`` with the ``sid_<p>`` fields appended to its sparse fields (the item and
        category fields keep their positions)."""
        clash = sorted(set(self.names) & set(spec.sparse_names))
        if clash:
            raise ValueError(f"the features already have sparse fields {clash}")
        return dataclasses.replace(
            spec,
            sparse_names=(*spec.sparse_names, *self.names),
            sparse_cardinalities=(*spec.sparse_cardinalities, *self.cardinalities),
        )

    def add_fields(self, features: RankFeatures, samples: pl.DataFrame) -> RankFeatures:
        """``features`` with each sample's item's field values as more sparse fields (items
        the fields were not fitted on, e.g. added after training, read 0 = unknown)."""
        if samples.height != len(features):
            raise ValueError(f"{samples.height} samples for {len(features)} feature rows")
        items = samples["item_idx"].to_numpy().astype(np.int64)
        known = (items >= 0) & (items < self.values.shape[0])
        values = np.zeros((items.shape[0], len(self.names)), dtype=np.int64)
        values[known] = self.values[items[known]]
        sparse = np.column_stack([features.sparse, values]).astype(np.int64)
        return dataclasses.replace(features, spec=self.extend_spec(features.spec), sparse=sparse)

    def with_columns(self, items: pl.DataFrame) -> pl.DataFrame:
        """``items`` plus one Int64 column per field (``sid_1``, ...): categorical item
        attributes, numeric so that text encoders never read them as words."""
        values = self.encode_items(items)
        return items.with_columns(
            pl.Series(name, values[:, f], dtype=pl.Int64) for f, name in enumerate(self.names)
        )

    def state(self) -> dict[str, NDArray]:
        """Field values, prefix vocabularies, ids (``ids.*``) and encoder (``encoder.*``)."""
        if self.ids is None:
            raise RuntimeError("SemanticItemFields is not fitted")
        out: dict[str, NDArray] = {"values": self.values}
        out.update({f"vocab.{f}": v for f, v in enumerate(self.vocab)})
        out.update({f"ids.{k}": v for k, v in self.ids.state().items()})
        out.update({f"encoder.{k}": v for k, v in self.encoder.state().items()})
        return out

    @classmethod
    def from_state(
        cls, config: SemanticFieldsConfig, state: dict[str, NDArray]
    ) -> SemanticItemFields:
        fields = cls(config)
        fields.values = np.asarray(state["values"], dtype=np.int64)
        fields.vocab = tuple(
            np.asarray(state[f"vocab.{f}"], dtype=np.int64) for f in range(len(config.prefixes))
        )
        fields.ids = semantic_ids_from_state(config.ids, prefixed(state, "ids."))
        fields.encoder = TextEncoder.from_state(config.encoder, prefixed(state, "encoder."))
        return fields

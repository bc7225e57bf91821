"""The scenario (home feed, detail page, search, ...) as a sparse ranking field.

Samples built from a log with a ``scenario`` column carry it through
(:mod:`funnelrec.rank.samples`); :class:`ScenarioVocab` maps its values to the codes of one
more sparse field named :data:`SCENARIO_FIELD`, appended after the point-in-time featurizer's
fields. Code 0 is "unknown / missing" (a sample without the column, or a scenario not seen in
training), as for every sparse field (:mod:`funnelrec.features.spec`); models that need the
scenario (STAR) find the field by name.

Example:
    >>> import polars as pl
    >>> vocab = ScenarioVocab.fit(pl.DataFrame({"scenario": ["search", "feed", "feed"]}))
    >>> vocab.names, vocab.cardinality
    (('feed', 'search'), 3)
    >>> vocab.encode(pl.DataFrame({"scenario": ["search", "detail", None]})).tolist()
    [2, 0, 0]
    >>> vocab.encode(pl.DataFrame({"item_idx": [1]})).tolist()
    [0]
"""

from __future__ import annotations

import dataclasses
from typing import Self

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.features.spec import FeatureSpec, RankFeatures

SCENARIO_COLUMN = "scenario"
"""The Samples / Interactions column holding the scenario name."""
SCENARIO_FIELD = "scenario"
"""Name of the sparse field holding the scenario code (``FeatureSpec.sparse_names``)."""


def scenario_field(spec: FeatureSpec) -> int | None:
    """Index of the scenario field in ``spec``'s sparse fields (None when absent).

    Example:
        >>> spec = FeatureSpec(("user", "item", "scenario"), (3, 4, 3), 0, 0, 1, 1, ("click",))
        >>> scenario_field(spec)
        2
    """
    names = spec.sparse_names
    return names.index(SCENARIO_FIELD) if SCENARIO_FIELD in names else None


class ScenarioVocab:
    """Scenario names -> codes ``1..S`` of the sparse scenario field (0 = unknown).

    Args:
        names: the known scenario names, in code order (code ``i + 1`` is ``names[i]``).
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = tuple(names)

    @classmethod
    def fit(cls, samples: pl.DataFrame) -> Self:
        """The sorted distinct non-null scenarios of ``samples`` (none without the column)."""
        if SCENARIO_COLUMN not in samples.columns:
            return cls(())
        values = samples[SCENARIO_COLUMN].cast(pl.String).drop_nulls().unique().sort()
        return cls(tuple(values.to_list()))

    @property
    def cardinality(self) -> int:
        """Codes of the field: the known scenarios plus the unknown code 0."""
        return len(self.names) + 1

    def encode(self, samples: pl.DataFrame) -> NDArray[np.int64]:
        """``[N]`` int64 codes of ``samples``' scenarios (0 = missing column, null or unseen)."""
        if SCENARIO_COLUMN not in samples.columns or not self.names:
            return np.zeros(samples.height, dtype=np.int64)
        mapping = {name: code for code, name in enumerate(self.names, start=1)}
        codes = (
            samples[SCENARIO_COLUMN]
            .cast(pl.String)
            .replace_strict(mapping, default=0, return_dtype=pl.Int64)
        )
        return codes.fill_null(0).to_numpy().astype(np.int64)

    def extend_spec(self, spec: FeatureSpec) -> FeatureSpec:
        """``spec`` with the scenario field appended to its sparse fields.

        Raises:
            ValueError: ``spec`` already has a scenario field.
        """
        if scenario_field(spec) is not None:
            raise ValueError(f"the features already have a sparse field '{SCENARIO_FIELD}'")
        return dataclasses.replace(
            spec,
            sparse_names=(*spec.sparse_names, SCENARIO_FIELD),
            sparse_cardinalities=(*spec.sparse_cardinalities, self.cardinality),
        )

    def add_field(self, features: RankFeatures, samples: pl.DataFrame) -> RankFeatures:
        """``features`` with the scenario code of each of ``samples`` as one more sparse field.

        Raises:
            ValueError: the features already have a scenario field, or the row counts differ.
        """
        spec = self.extend_spec(features.spec)
        if samples.height != len(features):
            raise ValueError(f"{samples.height} samples for {len(features)} feature rows")
        sparse = np.column_stack([features.sparse, self.encode(samples)]).astype(np.int64)
        return dataclasses.replace(features, spec=spec, sparse=sparse)

    def state(self) -> dict[str, NDArray]:
        """The names as an array (``np.savez``-able, no pickle)."""
        return {"names": np.array(self.names, dtype=np.str_)}

    @classmethod
    def from_state(cls, state: dict[str, NDArray]) -> Self:
        return cls(tuple(str(n) for n in state["names"]))

"""Item titles and categories for a trace: the artifact's categories, plus the titles (and
categories) of an items table when one is given (artifacts do not store titles)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from funnelrec.pipeline.funnel import Funnel


class ItemLabels:
    """item_idx -> external id, title, category.

    Example:
        >>> ItemLabels([17, 18], titles=["Alien", None]).describe(0)
        {'item_id': 17, 'title': 'Alien', 'category': None}
    """

    def __init__(
        self,
        ids: Sequence[Any],
        titles: Sequence[str | None] | None = None,
        categories: Sequence[str | None] | None = None,
    ) -> None:
        self._ids = list(ids)
        n = len(self._ids)
        self._titles: list[str | None] = list(titles) if titles is not None else [None] * n
        self._categories: list[str | None] = (
            list(categories) if categories is not None else [None] * n
        )

    @classmethod
    def of(cls, funnel: Funnel, items: pl.DataFrame | None = None) -> ItemLabels:
        """The funnel's ids and categories; an ``items`` table (``item_id`` plus ``title``
        and/or ``category``) adds titles, and categories where the artifact has none."""
        labels = cls(funnel.item_vocab.ids.to_list())
        codes = funnel.items.category
        if codes is not None:
            names = funnel.users.category_vocab.ids.cast(pl.String).to_list()
            for idx, code in enumerate(codes[: len(labels._ids)].tolist()):
                if 0 <= code < len(names):
                    labels._categories[idx] = names[code]
        if items is not None and "item_id" in items.columns:
            idx = funnel.item_vocab.encode(items["item_id"]).tolist()
            for column, target in (("title", labels._titles), ("category", labels._categories)):
                if column not in items.columns:
                    continue
                for i, value in zip(idx, items[column].cast(pl.String).to_list(), strict=True):
                    if i >= 0 and value is not None and (column == "title" or target[i] is None):
                        target[i] = value
        return labels

    @property
    def has_titles(self) -> bool:
        return any(t is not None for t in self._titles)

    def item_id(self, idx: int) -> str | int:
        """The external id of ``idx`` as the input tables spelled it (JSON-safe)."""
        value = self._ids[idx]
        return value if isinstance(value, int | str) else str(value)

    def describe(self, idx: int) -> dict[str, Any]:
        """``{item_id, title, category}`` of one item (None where unknown)."""
        idx = int(idx)
        if not 0 <= idx < len(self._ids):
            return {"item_id": str(idx), "title": None, "category": None}
        return {
            "item_id": self.item_id(idx),
            "title": self._titles[idx],
            "category": self._categories[idx],
        }

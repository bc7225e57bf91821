"""Warm start: a two-tower fit that begins where an earlier fit on part of its data ended.

``fit_funnel`` fits recall twice: on the data before the ranking window (the ranker's samples,
the tuning and the guards come from that fit) and on the whole training data (the funnel that
serves). The second fit sees every row the first one saw, so starting it from the first one's
weights is leakage-free, and it needs fewer epochs (``TwoTowerConfig.warm_start_epochs``)
than a fit from random weights (``train.epochs``).

The two fits have their own vocabularies: an embedding row is carried over only for an id (an
item, a category, a user-attribute value) both of them know, through its position in each.
Rows of ids only the second fit knows keep their fresh initialisation. Every other tensor
(the towers' MLPs, the text projection, the pooling, the creation-time buckets) is copied
whole when its shape is the same in both models, and left fresh when it is not (a user
attribute only one fit has changes the user MLP's input width).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from funnelrec.data.user_attributes import UserAttributeEncoder
from funnelrec.data.vocab import Vocabulary
from funnelrec.recall.two_tower.model import TowerSizes

RowMap = tuple[NDArray[np.int64], NDArray[np.int64]]
"""``(rows in the new table, rows in the earlier table)`` holding the same ids."""

ATTRIBUTE_TABLES = "user_tower.attrs."
"""Parameter-name prefix of the per-attribute tables: their index is a position among the
fit's attribute columns, so they are matched by column name, never by name or shape."""


@dataclass(frozen=True)
class TowerVocabularies:
    """What the rows of a fit's embedding tables stand for.

    Attributes:
        items: item id <-> item row (``item_id`` and ``history_id`` tables).
        categories: category <-> index; the tables' code is index + 1 (0 = unknown).
        attributes: the user-attribute columns and their value vocabularies (code =
            index + 1, 0 = unknown).
        sizes: the tables' sizes (where the unknown and padding item rows are).
    """

    items: Vocabulary
    categories: Vocabulary
    attributes: UserAttributeEncoder
    sizes: TowerSizes


def shared_rows(earlier: Vocabulary, new: Vocabulary) -> RowMap:
    """Positions of the ids both vocabularies hold: ``(in new, in earlier)``.

    Example:
        >>> import polars as pl
        >>> a = Vocabulary.from_ids(pl.Series([10, 20, 30]))
        >>> b = Vocabulary.from_ids(pl.Series([20, 30, 40]))
        >>> [rows.tolist() for rows in shared_rows(a, b)]
        [[0, 1], [1, 2]]
    """
    in_earlier = earlier.encode(new.ids).astype(np.int64)
    new_rows = np.flatnonzero(in_earlier >= 0)
    return new_rows, in_earlier[new_rows]


def _coded(rows: RowMap) -> RowMap:
    """Vocabulary positions -> table codes (index + 1), with the unknown code 0 kept."""
    new_rows, old_rows = rows
    return np.append(0, new_rows + 1), np.append(0, old_rows + 1)


def row_maps(earlier: TowerVocabularies, new: TowerVocabularies) -> dict[str, RowMap]:
    """The row correspondences of every embedding table indexed by a vocabulary."""
    new_items, old_items = shared_rows(earlier.items, new.items)
    # The unknown-id row (items dropped out of the id path, and new items) carries over too,
    # and the history's all-zero padding row with it.
    item_ids = (
        np.append(new_items, new.sizes.unknown_id),
        np.append(old_items, earlier.sizes.unknown_id),
    )
    history_ids = (
        np.append(item_ids[0], new.sizes.pad_id),
        np.append(item_ids[1], earlier.sizes.pad_id),
    )
    categories = _coded(shared_rows(earlier.categories, new.categories))
    maps = {
        "item_tower.item_id.weight": item_ids,
        "user_tower.history_id.weight": history_ids,
        "item_tower.category.weight": categories,
        "user_tower.history_category.weight": categories,
    }
    old_columns = earlier.attributes.columns
    for a, column in enumerate(new.attributes.columns):
        if column in old_columns:
            b = old_columns.index(column)
            rows = shared_rows(earlier.attributes.vocabs[b], new.attributes.vocabs[a])
            maps[f"{ATTRIBUTE_TABLES}{a}.weight"] = _coded(rows)
    return maps


@dataclass(frozen=True)
class Transfer:
    """What :func:`transfer` carried over.

    Attributes:
        item_rows: item-id rows taken from the earlier fit (the unknown row included).
        fresh: tensors left at their fresh initialisation (no match in the earlier fit).
    """

    item_rows: int
    fresh: tuple[str, ...]


def transfer(
    earlier: nn.Module,
    earlier_vocabularies: TowerVocabularies,
    model: nn.Module,
    vocabularies: TowerVocabularies,
) -> Transfer:
    """Overwrite ``model``'s freshly initialised weights with ``earlier``'s, in place.

    Embedding tables indexed by a vocabulary take the rows of the ids both fits know
    (:func:`row_maps`); every other tensor is copied when its shape matches.
    """
    maps = row_maps(earlier_vocabularies, vocabularies)
    source = earlier.state_dict()
    fresh = []
    with torch.no_grad():
        for name, target in model.state_dict().items():  # tensors sharing the model's storage
            old = source.get(name)
            if name in maps and old is not None:
                new_rows, old_rows = (torch.from_numpy(rows) for rows in maps[name])
                target[new_rows.to(target.device)] = old[old_rows.to(old.device)].to(target.device)
            elif (
                old is not None
                and not name.startswith(ATTRIBUTE_TABLES)
                and old.shape == target.shape
            ):
                target.copy_(old)
            else:
                fresh.append(name)
    return Transfer(int(maps["item_tower.item_id.weight"][0].shape[0]), tuple(fresh))

"""Ranking features as torch batches: per-row tensors once, behaviour sequences per batch.

:class:`RankFeatures` keeps sequences as windows over the log
(:mod:`funnelrec.features.behaviours`); a batch's ``[B, L]`` rows are gathered when the batch
is drawn, so memory grows with the batch, not with ``N x L``. Every batch the ranker trains,
validates or predicts on comes from :meth:`BatchTable.rows`.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from funnelrec.features.spec import RankFeatures
from funnelrec.rank.duration import WEIGHT_PREFIX
from funnelrec.rank.listwise import QUERY_KEY

Batch = dict[str, torch.Tensor]


class BatchTable:
    """The batch dict of ``features`` (see :mod:`funnelrec.features.spec`), row by row.

    Args:
        features: the samples.
        query: add the query ids the listwise loss groups by (``QUERY_KEY``).
        labels: keep the ``label_<task>`` columns and the ``weight_<task>`` loss weights in
            ``features.extra`` (training); False for prediction.
    """

    def __init__(self, features: RankFeatures, *, query: bool = False, labels: bool = True):
        arrays = features.arrays()
        if labels:  # per-sample loss weights of weighted tasks travel with their labels
            arrays.update({k: v for k, v in features.extra.items() if k.startswith(WEIGHT_PREFIX)})
        else:
            arrays = {k: v for k, v in arrays.items() if not k.startswith("label_")}
        if query:
            arrays[QUERY_KEY] = features.group
        self.tensors = {
            key: torch.from_numpy(np.require(v, requirements=["C", "W"]))
            for key, v in arrays.items()
        }
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def column(self, key: str) -> torch.Tensor:
        """One per-row tensor (e.g. the query ids), all rows."""
        return self.tensors[key]

    def rows(self, rows: NDArray[np.integer] | slice, device: torch.device | str = "cpu") -> Batch:
        """The batch of ``rows`` (an index array, or a slice: views of the per-row tensors) on
        ``device``, its behaviour sequences gathered now."""
        if isinstance(rows, slice):
            positions = np.arange(*rows.indices(len(self)), dtype=np.int64)
            batch = {key: value[rows] for key, value in self.tensors.items()}
        else:
            positions = np.asarray(rows, dtype=np.int64)
            index = torch.from_numpy(positions)
            batch = {key: value[index] for key, value in self.tensors.items()}
        for key, value in self.features.batch_arrays(positions).items():
            batch[key] = torch.from_numpy(value)
        return {key: value.to(device) for key, value in batch.items()}

"""The contract between ranking features and ranking models.

Feature code (``funnelrec.features.pit``, ``funnelrec.rank.samples``) produces a
:class:`RankFeatures` (numpy, one row per sample); models read a batch of it as torch tensors
under the keys of :data:`BATCH_KEYS`; both agree on the shapes through a :class:`FeatureSpec`.
Models never see external ids or polars frames.

Batch keys (``B`` = batch, ``F`` = sparse fields, ``D`` = dense features, ``L`` = sequence):

* ``sparse``   ``[B, F]`` int64, field ``f`` in ``[0, spec.sparse_cardinalities[f])``; index 0 of
  every field is "unknown / missing", so real values start at 1.
* ``dense``    ``[B, D]`` float32, already standardised (finite, roughly zero-mean unit-variance).
* ``seq_item`` ``[B, L]`` int64, the user's last L positive items before the sample time, most
  recent first, in the id space of sparse field ``spec.item_field``; 0 = padding.
* ``seq_category`` ``[B, L]`` int64, their categories in the id space of field
  ``spec.category_field`` (0 = padding/unknown).
* ``seq_gap``  ``[B, L]`` float32, log1p(seconds between the behaviour and the sample time);
  0 at padding.
* ``label_<task>`` ``[B]`` float32 in {0, 1}, one per task in ``spec.tasks``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from funnelrec.features.behaviours import SequenceArrays, SequenceBlock

SEQ_KEYS = ("seq_item", "seq_category", "seq_gap")


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Shapes and vocabularies of the ranking inputs (what a model is built from).

    Example:
        >>> spec = FeatureSpec(("user", "item", "category"), (10, 20, 5), 3, 50, 1, 2, ("click",))
        >>> spec.n_sparse
        3
    """

    sparse_names: tuple[str, ...]
    sparse_cardinalities: tuple[int, ...]
    n_dense: int
    seq_len: int
    item_field: int
    category_field: int
    tasks: tuple[str, ...]
    dense_names: tuple[str, ...] = ()

    @property
    def n_sparse(self) -> int:
        return len(self.sparse_cardinalities)


@dataclass(frozen=True)
class RankFeatures:
    """Model inputs for N samples (see the module docstring for keys and shapes).

    The behaviour sequences are a :class:`~funnelrec.features.behaviours.SequenceBlock`:
    batches gather their ``[B, L]`` rows (:meth:`batch_arrays`), so ``N`` samples never hold
    ``[N, L]`` copies of their users' histories; ``seq_item`` / ``seq_category`` / ``seq_gap``
    materialise all ``N`` rows (once) for code that reads them whole.

    ``group`` ``[N]`` is the query (impression list) each sample belongs to, for GAUC and
    per-query ranking metrics; ``user_idx`` ``[N]`` the user.
    """

    spec: FeatureSpec
    sparse: NDArray[np.int64]
    dense: NDArray[np.float32]
    sequences: SequenceBlock
    labels: dict[str, NDArray[np.float32]]
    group: NDArray[np.int64]
    user_idx: NDArray[np.int64]
    extra: dict[str, NDArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.sparse.shape[0])

    @cached_property
    def _all_sequences(self) -> SequenceArrays:
        return self.sequences.dense()

    @property
    def seq_item(self) -> NDArray[np.int64]:
        """``[N, L]`` behaviour item ids (0 = padding)."""
        return self._all_sequences[0]

    @property
    def seq_category(self) -> NDArray[np.int64]:
        """``[N, L]`` behaviour category ids (0 = padding / unknown)."""
        return self._all_sequences[1]

    @property
    def seq_gap(self) -> NDArray[np.float32]:
        """``[N, L]`` float32 ``log1p`` seconds from each behaviour to the sample time."""
        return self._all_sequences[2]

    def take(self, rows: NDArray[np.integer]) -> RankFeatures:
        """The subset ``rows`` (any integer index array)."""
        return RankFeatures(
            self.spec,
            self.sparse[rows],
            self.dense[rows],
            self.sequences.take(rows),
            {t: v[rows] for t, v in self.labels.items()},
            self.group[rows],
            self.user_idx[rows],
            {k: v[rows] for k, v in self.extra.items()},
        )

    def shortened(self, length: int) -> RankFeatures:
        """The same samples with each behaviour sequence cut to its most recent ``length``
        (``spec.seq_len`` too): e.g. DIN over the last 50 beside a model over the last 1,000,
        from one feature pass."""
        return dataclasses.replace(
            self,
            spec=dataclasses.replace(self.spec, seq_len=length),
            sequences=self.sequences.shortened(length),
        )

    def arrays(self) -> dict[str, NDArray]:
        """The per-row arrays of the batch dict (numpy): sparse, dense, label_<task>; the
        sequences come per batch from :meth:`batch_arrays`."""
        out: dict[str, NDArray] = {"sparse": self.sparse, "dense": self.dense}
        out.update({f"label_{t}": v for t, v in self.labels.items()})
        return out

    def batch_arrays(self, rows: NDArray[np.integer]) -> dict[str, NDArray]:
        """The sequence keys of the batch dict (``seq_item``, ``seq_category``, ``seq_gap``)
        for ``rows``."""
        return dict(zip(SEQ_KEYS, self.sequences.dense(rows), strict=True))

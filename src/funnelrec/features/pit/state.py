"""What point-in-time features learn from the training data, and its plain-array persistence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class FittedState:
    """Fitted state of :class:`~funnelrec.features.pit.PointInTimeFeatures`.

    Attributes:
        item_category: ``[n_items]`` int32 category index per item, -1 = none.
        n_categories: categories in the fitted vocabulary.
        n_users: users in the fitted vocabulary.
        user_attr: ``[n_users, A]`` int32 attribute codes, 0 = unknown.
        attr_names: the ``A`` attribute names.
        attr_cardinalities: ``A`` code counts (0 included).
        item_created_at: ``[n_items]`` int64 unix s, <= 0 = unknown; None without created_at.
        has_impressions: whether the training log had impressions (CTR features exist).
        global_ctr: clicks / impressions of the training log, the CTR smoothing prior.
        tasks: the label tasks of the training samples.
        positive_events: the Dataset's positive rule (None = every event but impression).
        dense_mean: ``[D]`` float64 standardisation mean.
        dense_std: ``[D]`` float64 standardisation std (> 0).
        evidence: the recall-evidence sample columns read as the last dense features
            (:mod:`funnelrec.features.pit.evidence`); empty when the training samples had none.
    """

    item_category: NDArray[np.int32]
    n_categories: int
    n_users: int
    user_attr: NDArray[np.int32]
    attr_names: tuple[str, ...]
    attr_cardinalities: tuple[int, ...]
    item_created_at: NDArray[np.int64] | None
    has_impressions: bool
    global_ctr: float
    tasks: tuple[str, ...]
    positive_events: tuple[str, ...] | None
    dense_mean: NDArray[np.float64]
    dense_std: NDArray[np.float64]
    evidence: tuple[str, ...] = ()

    @property
    def n_items(self) -> int:
        return int(self.item_category.shape[0])

    def category_of(self, item: NDArray[np.int64]) -> NDArray[np.int64]:
        """``[N]`` fitted category index per item (-1: unknown item or no category)."""
        known = (item >= 0) & (item < self.n_items)
        out = np.full(item.shape[0], -1, dtype=np.int64)
        out[known] = self.item_category[item[known]]
        return out

    def to_arrays(self) -> dict[str, NDArray]:
        """The state as plain arrays (``np.savez``-able, loadable without pickle).

        ``item_created_at`` and ``positive_events`` are left out when None, so states saved
        before a key existed read back as None.
        """
        out: dict[str, NDArray] = {
            "item_category": self.item_category,
            "n_categories": np.array(self.n_categories, dtype=np.int64),
            "n_users": np.array(self.n_users, dtype=np.int64),
            "user_attr": self.user_attr,
            "attr_names": np.array(self.attr_names, dtype=np.str_),
            "attr_cardinalities": np.array(self.attr_cardinalities, dtype=np.int64),
            "has_impressions": np.array(self.has_impressions),
            "global_ctr": np.array(self.global_ctr, dtype=np.float64),
            "tasks": np.array(self.tasks, dtype=np.str_),
            "dense_mean": self.dense_mean,
            "dense_std": self.dense_std,
        }
        if self.evidence:
            out["evidence"] = np.array(self.evidence, dtype=np.str_)
        if self.item_created_at is not None:
            out["item_created_at"] = self.item_created_at
        if self.positive_events is not None:
            out["positive_events"] = np.array(self.positive_events, dtype=np.str_)
        return out

    @classmethod
    def from_arrays(cls, state: dict[str, NDArray]) -> FittedState:
        """Inverse of :meth:`to_arrays` (extra keys are ignored)."""
        return cls(
            item_category=np.asarray(state["item_category"], dtype=np.int32),
            n_categories=int(state["n_categories"]),
            n_users=int(state["n_users"]),
            user_attr=np.asarray(state["user_attr"], dtype=np.int32),
            attr_names=tuple(str(a) for a in state["attr_names"]),
            attr_cardinalities=tuple(int(c) for c in state["attr_cardinalities"]),
            item_created_at=(
                np.asarray(state["item_created_at"], dtype=np.int64)
                if "item_created_at" in state
                else None
            ),
            has_impressions=bool(state["has_impressions"]),
            global_ctr=float(state["global_ctr"]),
            tasks=tuple(str(t) for t in state["tasks"]),
            positive_events=(
                tuple(str(e) for e in state["positive_events"])
                if "positive_events" in state
                else None
            ),
            dense_mean=np.asarray(state["dense_mean"], dtype=np.float64),
            dense_std=np.asarray(state["dense_std"], dtype=np.float64),
            evidence=tuple(str(e) for e in state.get("evidence", ())),
        )

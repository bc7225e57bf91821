"""Recall for users without history: popularity by demographic group, and onboarding tags.

* :class:`DemographicPopular` ranks the time-decayed popular items of the query's user group
  (its attribute codes, e.g. age bucket x gender x region). A group with fewer than
  ``min_group_users`` active training users is not trusted: the query backs off to a coarser
  group (the last attribute dropped first), finally to the global list.
* :class:`Onboarding` ranks the popular items of the categories a new user picked at sign-up
  (``Queries.tags_ptr/tags_idx``), sharing the per-category lists with
  :class:`~funnelrec.recall.popular.Popular`'s category mode.

Both are anchored at ``data.as_of`` like every popularity statistic, so no held-out period
leaks into the counts.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, Self

import numba
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from pydantic import Field

from funnelrec.arrays import unique_sorted
from funnelrec.data.dataset import Dataset
from funnelrec.errors import ConfigError, MissingInputError
from funnelrec.recall.base import ChannelResult, Queries, RetrieverBase, RetrieverConfig
from funnelrec.recall.popular import category_top_items, decayed_pairs, top_per_row
from funnelrec.recall.sparse import row_ptr
from funnelrec.recall.topk import matmul_topk, ranked_topk, seen_exclusions

DAY_S = 86_400.0


# ---------------------------------------------------------------------------- demographic


class DemographicPopularConfig(RetrieverConfig):
    """Popularity per user group with backoff.

    ``attributes`` lists the user attribute columns that define a group, most important
    first; backoff drops them from the end: with ``("age", "gender", "region")`` a query
    tries (age, gender, region), then (age, gender), then (age), then the global list. A level
    is skipped when the query's code of one of its attributes is 0 (unknown) or when the group
    had fewer than ``min_group_users`` users with positives in training.

    ``shrinkage`` smooths a group's counts towards its parent group (hierarchically, from the
    global list down): ``score_g = counts_g + shrinkage * dist(parent(g))``, so a group with
    little recent evidence leans on its parent and its list is filled from it. For users
    without history, 300 recalled more than 0 (plain counts) on both MovieLens-100k and the
    simulator; very large values converge to the global list.

    Example:
        >>> DemographicPopularConfig(attributes=("gender", "age"), min_group_users=5).kind
        'demographic'
    """

    kind: Literal["demographic"] = "demographic"
    attributes: tuple[str, ...] | None = Field(
        None, description="Group attributes, coarsest-last backoff order (None = all known)."
    )
    min_group_users: int = Field(20, gt=0, description="Smaller groups back off to coarser.")
    shrinkage: float = Field(
        300.0,
        ge=0,
        description="Pseudo-mass (in decayed user-item pairs) of the parent group's "
        "distribution mixed into each group's counts; 0 = the group's own counts only.",
    )
    half_life_s: float = Field(7 * DAY_S, gt=0, description="Popularity half-life.")
    per_group: int = Field(500, gt=0, description="Popular items kept per group.")

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        return DemographicPopular


def _group_key(codes: NDArray[np.int64], radix: NDArray[np.int64]) -> NDArray[np.int64]:
    """Mixed-radix key of attribute codes ``[N, L]`` -> ``[N]`` int64 (L = 0: all zero)."""
    return codes @ radix[: codes.shape[1]] if codes.shape[1] else np.zeros(len(codes), np.int64)


def _lookup(
    keys: NDArray[np.int64], query: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Position of each ``query`` key ``[N]`` in sorted ``keys`` ``[G]`` and whether it is there."""
    if keys.shape[0] == 0:
        return np.zeros(query.shape[0], dtype=np.int64), np.zeros(query.shape[0], dtype=bool)
    j = np.minimum(np.searchsorted(keys, query), keys.shape[0] - 1)
    return j, keys[j] == query


@numba.njit(cache=True)
def _finest_groups(codes, level_ptr, group_key, radix, out):  # pragma: no cover - compiled
    """``out[r]``: the row of query ``r``'s finest stored group whose attribute codes are all
    known (> 0); rows matching none keep their value (the global row)."""
    n_levels = level_ptr.shape[0] - 1
    for r in range(codes.shape[0]):
        for level in range(n_levels - 1, 0, -1):
            key = 0
            known = True
            for a in range(level):
                known = known and codes[r, a] > 0
                key += codes[r, a] * radix[a]
            lo, hi = level_ptr[level], level_ptr[level + 1]
            if not known or lo == hi:
                continue
            j = lo + np.searchsorted(group_key[lo:hi], key)
            if j < hi and group_key[j] == key:
                out[r] = j
                break


def _distribution(scores: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each row's top ``n`` entries rescaled to sum to 1 (empty rows stay empty)."""
    top = top_per_row(scores, n)
    total = np.asarray(top.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.where(total > 0, total, 1.0)) @ top)


def _shrink(
    scores: sp.csr_matrix,
    level_ptr: NDArray[np.int64],
    group_key: NDArray[np.int64],
    radix: NDArray[np.int64],
    shrinkage: float,
    n: int,
) -> sp.csr_matrix:
    """Hierarchical smoothing: ``row_g = counts_g + shrinkage * dist(parent(g))``.

    Levels are processed coarse to fine, so a group's parent (its nearest stored ancestor)
    is already smoothed; the parent's distribution is truncated to its top ``n`` items.

    Args:
        scores: ``[G, N]`` decayed counts per group, rows ordered by level (see ``level_ptr``).
        level_ptr: ``[L + 2]`` row offsets of each level (level 0 = the global row).
        group_key: ``[G]`` mixed-radix keys, sorted within each level.
        radix: ``[L]`` the mixed-radix place values.
        shrinkage: pseudo-mass of the parent distribution.
        n: items kept per distribution.

    Returns:
        ``[G, N]`` smoothed scores (the global row unchanged).
    """
    blocks = [scores[level_ptr[0] : level_ptr[1]]]
    dists = [_distribution(blocks[0], n)]
    for level in range(1, level_ptr.shape[0] - 1):
        lo, hi = level_ptr[level], level_ptr[level + 1]
        parent = np.full(hi - lo, -1, dtype=np.int64)
        for up in range(level - 1, -1, -1):  # nearest stored ancestor
            keys = group_key[level_ptr[up] : level_ptr[up + 1]]
            todo = parent < 0
            j, found = _lookup(keys, group_key[lo:hi] % radix[up])  # the key's prefix
            hit = todo & found
            parent[hit] = level_ptr[up] + j[hit]
        prior = sp.vstack(dists).tocsr()[parent]
        block = sp.csr_matrix(scores[lo:hi] + shrinkage * prior)
        blocks.append(block)
        dists.append(_distribution(block, n))
    return sp.vstack(blocks).tocsr()


class DemographicPopular(RetrieverBase):
    """Time-decayed popularity of the query's demographic group (see the config).

    Example:
        >>> import polars as pl
        >>> inter = pl.DataFrame({"user_id": [1, 2, 3], "item_id": [7, 7, 8],
        ...     "timestamp": [0, 0, 0], "event": ["click"] * 3, "value": [1.0] * 3})
        >>> users = pl.DataFrame({"user_id": [1, 2, 3], "gender": ["f", "f", "m"]})
        >>> data = Dataset.build(inter, users=users, as_of=1)
        >>> cfg = DemographicPopularConfig(k=1, min_group_users=1, shrinkage=0.0)
        >>> model = DemographicPopular(cfg)
        >>> model = model.fit(data, rng=np.random.default_rng(0))
        >>> q = Queries(np.array([0, 1]), np.array([-1, -1], np.int32), np.array([1, 1]),
        ...     np.zeros(3, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64),
        ...     user_attr=np.array([[2], [1]], np.int32))  # gender codes: 1 = f, 2 = m
        >>> data.item_vocab.decode(model.retrieve(q).item_idx[:, 0]).to_list()
        [8, 7]
    """

    supports_cold_users: ClassVar[bool] = True
    supports_new_items: ClassVar[bool] = False

    config: DemographicPopularConfig

    def __init__(self, config: DemographicPopularConfig | None = None) -> None:
        config = config if config is not None else DemographicPopularConfig()
        self.config = config
        self._state: dict[str, NDArray] | None = None
        self._ranked: tuple[NDArray[np.int64], NDArray[np.int32], NDArray] | None = None

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        """Count decayed popularity for every group at every backoff level.

        Args:
            data: the training Dataset (``positives``, ``user_attr``, ``as_of``).
            rng: unused (deterministic); accepted for the Retriever protocol.
        """
        del rng
        cfg = self.config
        all_columns = data.user_attr_encoder.columns
        columns = all_columns if cfg.attributes is None else cfg.attributes
        missing = [c for c in columns if c not in all_columns]
        if missing:
            raise MissingInputError(
                f"demographic channel: user attributes {missing} are not in the users table "
                f"(available: {list(all_columns)})"
            )
        pos = np.array([all_columns.index(c) for c in columns], dtype=np.int64)
        card = np.array([data.user_attr_encoder.cardinalities[p] for p in pos], dtype=np.int64)
        if math.prod(card.tolist()) >= 2**62:
            raise ConfigError(f"demographic channel: too many groups for attributes {columns}")
        radix = np.concatenate([[1], np.cumprod(card)[:-1]]).astype(np.int64)
        codes = data.user_attr[:, pos].astype(np.int64)

        pairs, weight = decayed_pairs(data, cfg.half_life_s)
        pair_user = pairs["user_idx"].to_numpy().astype(np.int64)
        pair_item = pairs["item_idx"].to_numpy().astype(np.int64)
        active = np.bincount(pair_user, minlength=data.n_users) > 0

        keys, users, level_ptr = [], [], [0]
        rows_of_pairs, items_of_pairs, weights_of_pairs = [], [], []
        for level in range(pos.shape[0] + 1):  # prefix length: 0 = global
            user_key = _group_key(codes[:, :level], radix)
            known = active & (codes[:, :level] > 0).all(axis=1)
            key, count = np.unique(user_key[known], return_counts=True)
            trusted = (count >= cfg.min_group_users) | (level == 0)
            key, count = key[trusted], count[trusted]
            if level == 0 and key.shape[0] == 0:
                key, count = np.zeros(1, np.int64), np.zeros(1, np.int64)
            # Row of every pair whose user is in a trusted group of this level.
            j, found = _lookup(key, user_key[pair_user])
            hit = known[pair_user] & found
            rows_of_pairs.append(level_ptr[-1] + j[hit])
            items_of_pairs.append(pair_item[hit])
            weights_of_pairs.append(weight[hit])
            keys.append(key)
            users.append(count)
            level_ptr.append(level_ptr[-1] + key.shape[0])
        n_groups = level_ptr[-1]
        scores = sp.csr_matrix(
            (
                np.concatenate(weights_of_pairs),
                (np.concatenate(rows_of_pairs), np.concatenate(items_of_pairs)),
            ),
            shape=(n_groups, data.n_items),
        )
        level_ptr_arr = np.array(level_ptr, dtype=np.int64)
        group_key = np.concatenate(keys).astype(np.int64)
        if cfg.shrinkage > 0:
            scores = _shrink(scores, level_ptr_arr, group_key, radix, cfg.shrinkage, cfg.per_group)
        top = top_per_row(scores, cfg.per_group)
        self._set(
            {
                "attr_pos": pos.astype(np.int32),
                "n_attr": np.array([len(all_columns)], dtype=np.int64),
                "radix": radix,
                "level_ptr": level_ptr_arr,
                "group_key": group_key,
                "group_users": np.concatenate(users).astype(np.int64),
                "top_indptr": top.indptr.astype(np.int64),
                "top_indices": top.indices.astype(np.int32),
                "top_data": top.data.astype(np.float32),
                "n_items": np.array([data.n_items], dtype=np.int64),
            }
        )
        return self

    def _set(self, state: dict[str, NDArray]) -> None:
        self._state = state
        # Each group's list ranked once here (best first, ties by the smaller item): a request
        # then only walks its group's list past the seen items.
        ptr = np.asarray(state["top_indptr"], dtype=np.int64)
        indices, data = state["top_indices"], state["top_data"]
        group = np.repeat(np.arange(ptr.shape[0] - 1, dtype=np.int64), np.diff(ptr))
        order = np.lexsort((indices, -data.astype(np.float64), group))
        self._ranked = (ptr, indices[order].astype(np.int32), data[order])

    def group_of(self, user_attr: NDArray[np.int32] | None, n: int) -> NDArray[np.int64]:
        """The group row serving each query: finest trusted level with known codes.

        Args:
            user_attr: ``[B, A]`` attribute codes (0 = unknown) or None.
            n: B, the batch size.

        Returns:
            ``[B]`` int64 row into the per-group lists (the global row when nothing fits).
        """
        if self._state is None:
            raise RuntimeError("DemographicPopular is not fitted: call fit() or from_state()")
        s = self._state
        level_ptr, group_key = s["level_ptr"], s["group_key"]
        chosen = np.full(n, level_ptr[0], dtype=np.int64)  # the global row
        n_levels = level_ptr.shape[0] - 1
        if user_attr is None or n_levels == 1:
            return chosen
        if user_attr.shape != (n, int(s["n_attr"][0])):
            raise ValueError(
                f"queries.user_attr has shape {user_attr.shape}; expected ({n}, {s['n_attr'][0]})"
            )
        codes = user_attr[:, s["attr_pos"]].astype(np.int64)
        # One compiled pass over the rows and levels: the NumPy version (a lookup per level)
        # cost ~60 us of calls for a served request's one row.
        _finest_groups(codes, level_ptr, group_key, s["radix"], chosen)
        return chosen

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        """Top-``k`` popular items of each query's group (``queries.user_attr``; None = global).

        Returns:
            ``ChannelResult`` ``[B, k]`` (-1 / -inf padding); scores are relative to the
            group's most popular item (= 1).
        """
        k = self.config.k if k is None else k
        rows = self.group_of(queries.user_attr, len(queries))
        assert self._ranked is not None
        ptr, items, scores = self._ranked
        seen = seen_exclusions(queries, self.config.exclude_seen)
        idx, score = ranked_topk(ptr[rows], ptr[rows + 1], items, scores, k, seen)
        return ChannelResult(self.config.kind, idx, score)

    def state(self) -> dict[str, NDArray]:
        if self._state is None:
            raise RuntimeError("DemographicPopular is not fitted")
        return dict(self._state)

    @classmethod
    def from_state(
        cls, config: DemographicPopularConfig, state: dict[str, NDArray]
    ) -> DemographicPopular:
        model = cls(config)
        model._set({key: np.asarray(value) for key, value in state.items()})
        return model


# ----------------------------------------------------------------------------- onboarding


class OnboardingConfig(RetrieverConfig):
    """The popular items of the categories a new user chose at onboarding.

    Queries without tags get an all-padding row, so the merge fills them from other channels.

    Example:
        >>> OnboardingConfig(per_category=50).kind
        'onboarding'
    """

    kind: Literal["onboarding"] = "onboarding"
    half_life_s: float = Field(7 * DAY_S, gt=0, description="Popularity half-life.")
    per_category: int = Field(200, gt=0, description="Popular items kept per category.")

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        return Onboarding


class Onboarding(RetrieverBase):
    """Onboarding-tag recall (see :class:`OnboardingConfig`)."""

    supports_cold_users: ClassVar[bool] = True
    supports_new_items: ClassVar[bool] = False

    config: OnboardingConfig

    def __init__(self, config: OnboardingConfig | None = None) -> None:
        config = config if config is not None else OnboardingConfig()
        self.config = config
        self.item_score: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self.item_category: NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self.n_categories = 0
        self._top: sp.csr_matrix | None = None

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        """Decayed item popularity and each category's top items.

        Args:
            data: the training Dataset; needs an items table with a ``category`` column.
            rng: unused (deterministic); accepted for the Retriever protocol.
        """
        del rng
        categories = data.item_categories
        if categories is None:
            raise MissingInputError(
                "onboarding channel needs an items table with a category column"
            )
        pairs, weight = decayed_pairs(data, self.config.half_life_s)
        score = np.bincount(pairs["item_idx"].to_numpy(), weights=weight, minlength=data.n_items)
        self._set(score.astype(np.float32), categories, len(data.category_vocab))
        return self

    def _set(self, item_score: NDArray, item_category: NDArray, n_categories: int) -> None:
        self.item_score = np.asarray(item_score, dtype=np.float32)
        self.item_category = np.asarray(item_category, dtype=np.int32)
        self.n_categories = int(n_categories)
        self._top = category_top_items(
            self.item_category, self.item_score, self.n_categories, self.config.per_category
        )

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        """Top-``k`` items of the chosen categories, each chosen category weighted equally.

        Returns:
            ``ChannelResult`` ``[B, k]``; rows without (known) tags are all padding.
        """
        k = self.config.k if k is None else k
        if self._top is None:
            raise RuntimeError("Onboarding is not fitted: call fit() or from_state()")
        b = len(queries)
        if queries.tags_ptr is None or queries.tags_idx is None or not queries.tags_idx.size:
            # No tags (most served requests): every row is padding, as the product would give.
            return ChannelResult(
                self.config.kind,
                np.full((b, k), -1, dtype=np.int32),
                np.full((b, k), -np.inf, dtype=np.float32),
            )
        rows = np.repeat(np.arange(b, dtype=np.int64), np.diff(queries.tags_ptr))
        tags = queries.tags_idx.astype(np.int64)
        valid = (tags >= 0) & (tags < self.n_categories)
        # Each distinct tag weighs 1 / (the row's distinct tags), as diags(1 / n) @ pref did.
        key = unique_sorted(rows[valid] * max(self.n_categories, 1) + tags[valid])
        rows, tags = np.divmod(key, max(self.n_categories, 1))
        ptr = row_ptr(rows, b)
        n_tags = np.diff(ptr)
        weight = (1.0 / np.maximum(n_tags, 1))[rows]
        # An item is in one category's list only, so each score is one product and the order
        # of the sum cannot change it.
        seen = seen_exclusions(queries, self.config.exclude_seen)
        idx, score = matmul_topk(ptr, tags, weight, self._top, k, seen)
        return ChannelResult(self.config.kind, idx, score)

    def state(self) -> dict[str, NDArray]:
        return {
            "item_score": self.item_score,
            "item_category": self.item_category,
            "n_categories": np.array([self.n_categories], dtype=np.int64),
        }

    @classmethod
    def from_state(cls, config: OnboardingConfig, state: dict[str, NDArray]) -> Onboarding:
        model = cls(config)
        model._set(state["item_score"], state["item_category"], int(state["n_categories"][0]))
        return model

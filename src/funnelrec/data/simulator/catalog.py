"""The item catalogue: categories, sub-topics, clusters, creation times, popularity, titles.

Clusters are the finest level: groups of about ``cluster_size`` related items inside a sub-topic
(a series, a brand, complements) that no item attribute reveals; sessions follow clicks from
cluster to cluster, which is the item-to-item signal collaborative filtering can learn.

Items are indexed in creation order (``created_at`` ascending), so every per-category or
per-sub-topic pool listed in index order is also sorted by creation time: the items available
at time ``t`` are a prefix of each pool, found by one binary search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.simulator.config import DAY_S, SimulatorConfig

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = tuple(c + v for c in _CONSONANTS for v in _VOWELS)
_WORD_STRIDE = 1_423  # prime, coprime with the 70 ** 2 two-syllable words
_PRE_START_DAYS = 180.0  # initial items were created up to this long before the span


@dataclass(frozen=True, slots=True)
class Catalog:
    """Item attributes and sampling pools (``I`` items, ``C`` categories, ``S`` sub-topics each,
    ``L`` clusters of related items in all; each sub-topic is split into clusters).

    Attributes:
        category: ``[I]`` int32 category of each item.
        subtopic: ``[I]`` int32 global sub-topic id ``category * S + s``.
        cluster: ``[I]`` int32 global cluster id (clusters of a sub-topic are contiguous).
        created_at: ``[I]`` int64 creation time (unix s), ascending.
        weight: ``[I]`` float64 Zipf exposure weight (intrinsic popularity).
        quality: ``[I]`` float64 click-quality factor in ``[quality_floor, 1]``.
        weight_cum: ``[I]`` float64 inclusive cumsum of ``weight`` (the global pool).
        cluster_base: ``[C * S + 1]`` int64 first cluster id of each sub-topic.
        clu_ptr: ``[L + 1]`` int64 offsets of each cluster's pool.
        clu_items: ``[I]`` int32 items grouped by cluster, creation order inside a pool.
        clu_created: ``[I]`` int64 ``created_at[clu_items]``.
        clu_cum: ``[I]`` float64 inclusive cumsum of ``weight[clu_items]``.
        sub_ptr: ``[C * S + 1]`` int64 offsets of each sub-topic's pool.
        sub_items: ``[I]`` int32 items grouped by sub-topic, creation order inside a pool.
        sub_created: ``[I]`` int64 ``created_at[sub_items]``.
        sub_cum: ``[I]`` float64 inclusive cumsum of ``weight[sub_items]``.
        cat_ptr: ``[C + 1]`` int64 offsets of each category's pool.
        cat_items: ``[I]`` int32 items grouped by category.
        cat_created: ``[I]`` int64 ``created_at[cat_items]``.
        cat_cum: ``[I]`` float64 inclusive cumsum of ``weight[cat_items]``.
        subtopic_cum: ``[C, S]`` float64 cumulative sub-topic shares within each category.
        category_share: ``[C]`` float64 base share of each category (supply and demand).
    """

    category: NDArray[np.int32]
    subtopic: NDArray[np.int32]
    cluster: NDArray[np.int32]
    created_at: NDArray[np.int64]
    weight: NDArray[np.float64]
    quality: NDArray[np.float64]
    weight_cum: NDArray[np.float64]
    cluster_base: NDArray[np.int64]
    clu_ptr: NDArray[np.int64]
    clu_items: NDArray[np.int32]
    clu_created: NDArray[np.int64]
    clu_cum: NDArray[np.float64]
    sub_ptr: NDArray[np.int64]
    sub_items: NDArray[np.int32]
    sub_created: NDArray[np.int64]
    sub_cum: NDArray[np.float64]
    cat_ptr: NDArray[np.int64]
    cat_items: NDArray[np.int32]
    cat_created: NDArray[np.int64]
    cat_cum: NDArray[np.float64]
    subtopic_cum: NDArray[np.float64]
    category_share: NDArray[np.float64]

    @property
    def n_items(self) -> int:
        return int(self.category.shape[0])


def category_names(n_categories: int) -> list[str]:
    """Category labels ``c00, c01, ...`` (at least two digits).

    Example:
        >>> category_names(3)
        ['c00', 'c01', 'c02']
    """
    width = max(2, len(str(n_categories - 1)))
    return [f"c{c:0{width}d}" for c in range(n_categories)]


def vocabulary(size: int) -> list[str]:
    """``size`` distinct pronounceable pseudo-words (two syllables, then three).

    Example:
        >>> vocabulary(3)
        ['baba', 'koka', 'repa']
    """
    n = len(_SYLLABLES)
    words = []
    for j in range(size):
        if j < n * n:
            k = (j * _WORD_STRIDE) % (n * n)  # a bijection that spreads out similar words
            digits: tuple[int, ...] = (k % n, k // n)
        else:
            k = j - n * n
            digits = (k % n, (k // n) % n, (k // (n * n)) % n)
        word = "".join(_SYLLABLES[d] for d in digits)
        if j >= n * n + n**3:
            word += str(j)
        words.append(word)
    return words


def _creation_times(rng: np.random.Generator, config: SimulatorConfig) -> NDArray[np.int64]:
    """``[I]`` sorted creation times: an initial stock before the span, arrivals during it."""
    n = config.n_items
    start, end = config.start_timestamp, config.end_timestamp
    n_initial = max(round(n * config.initial_item_fraction), min(n, config.slate_size), 1)
    n_initial = min(n, n_initial)
    initial = start - 1 - (rng.random(n_initial) * _PRE_START_DAYS * DAY_S).astype(np.int64)
    u = rng.random(n - n_initial)
    span = end - start
    if config.item_arrival == "uniform":
        arrivals = start + (u * span).astype(np.int64)
    elif config.item_arrival == "growing":
        arrivals = start + (np.sqrt(u) * span).astype(np.int64)
    else:  # daily_batches: released each morning (06:00 + up to 10 minutes)
        day = np.floor(u * config.span_days)
        jitter = rng.random(u.shape[0]) * 600.0
        arrivals = (start + day * DAY_S + 6 * 3600 + jitter).astype(np.int64)
        arrivals = np.minimum(arrivals, end - 1)
    return np.sort(np.concatenate([initial, arrivals]))


def _pool(
    key: NDArray[np.int32], n_groups: int, created: NDArray[np.int64], weight: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int64], NDArray[np.float64]]:
    """Group items by ``key`` keeping creation order: ``(ptr, items, created, cum_weight)``."""
    items = np.argsort(key, kind="stable").astype(np.int32)
    ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=n_groups), out=ptr[1:])
    return ptr, items, created[items], np.cumsum(weight[items])


def build_catalog(rng: np.random.Generator, config: SimulatorConfig) -> Catalog:
    """Draw the catalogue: category shares, sub-topics, creation times, popularity, quality.

    Args:
        rng: the simulation's generator (advanced in place).
        config: the simulator config.

    Returns:
        The :class:`Catalog` of ``config.n_items`` items.
    """
    n, n_cat, n_sub = config.n_items, config.n_categories, config.n_subtopics
    category_share = rng.dirichlet(np.full(n_cat, 3.0))
    subtopic_share = rng.dirichlet(np.full(n_sub, 2.0), size=n_cat)  # [C, S]
    subtopic_cum = np.cumsum(subtopic_share, axis=1)
    subtopic_cum[:, -1] = 1.0

    created_at = _creation_times(rng, config)
    category = rng.choice(n_cat, size=n, p=category_share).astype(np.int32)
    u = rng.random(n)
    local = (u[:, None] >= subtopic_cum[category]).sum(axis=1)
    subtopic = (category * n_sub + np.minimum(local, n_sub - 1)).astype(np.int32)

    per_sub = np.bincount(subtopic, minlength=n_cat * n_sub)
    n_clusters = np.maximum(1, np.round(per_sub / config.cluster_size)).astype(np.int64)
    cluster_base = np.zeros(n_cat * n_sub + 1, dtype=np.int64)
    np.cumsum(n_clusters, out=cluster_base[1:])
    in_sub = (rng.random(n) * n_clusters[subtopic]).astype(np.int64)
    cluster = (cluster_base[subtopic] + in_sub).astype(np.int32)

    rank = rng.permutation(n).astype(np.float64)  # 0 = most popular
    weight = (rank + 1.0 + config.popularity_offset) ** -config.popularity_exponent
    quality = config.quality_floor + (1.0 - config.quality_floor) * (1.0 - rank / n) ** 2

    clu_ptr, clu_items, clu_created, clu_cum = _pool(
        cluster, int(cluster_base[-1]), created_at, weight
    )
    sub_ptr, sub_items, sub_created, sub_cum = _pool(subtopic, n_cat * n_sub, created_at, weight)
    cat_ptr, cat_items, cat_created, cat_cum = _pool(category, n_cat, created_at, weight)
    return Catalog(
        category=category,
        subtopic=subtopic,
        cluster=cluster,
        created_at=created_at,
        weight=weight,
        quality=quality,
        weight_cum=np.cumsum(weight),
        cluster_base=cluster_base,
        clu_ptr=clu_ptr,
        clu_items=clu_items,
        clu_created=clu_created,
        clu_cum=clu_cum,
        sub_ptr=sub_ptr,
        sub_items=sub_items,
        sub_created=sub_created,
        sub_cum=sub_cum,
        cat_ptr=cat_ptr,
        cat_items=cat_items,
        cat_created=cat_created,
        cat_cum=cat_cum,
        subtopic_cum=subtopic_cum,
        category_share=category_share,
    )


def make_titles(rng: np.random.Generator, config: SimulatorConfig, catalog: Catalog) -> pl.Series:
    """One title per item: words mostly from its sub-topic's and category's own vocabulary.

    The vocabulary is split into general words (10%), per-category words (30%) and per-sub-topic
    words (the rest); ``title_topic_share`` of the words come from the topical pools (60% of
    those from the sub-topic pool), so a title predicts its category. Within a pool, earlier
    words are more frequent.

    Returns:
        ``[I]`` String series of space-separated words.
    """
    n, n_cat, n_sub = config.n_items, config.n_categories, config.n_subtopics
    size = config.title_vocab_size
    n_general = max(1, size // 10)
    per_cat = max(1, (3 * size // 10) // n_cat)
    per_sub = max(1, (size - n_general - per_cat * n_cat) // (n_cat * n_sub))
    perm = rng.permutation(size)
    general = perm[:n_general]
    cat_words = perm[n_general : n_general + per_cat * n_cat].reshape(n_cat, per_cat)
    lo = n_general + per_cat * n_cat
    sub_words = perm[lo : lo + per_sub * n_cat * n_sub].reshape(n_cat * n_sub, per_sub)

    lengths = rng.integers(config.title_min_words, config.title_max_words + 1, size=n)
    owner = np.repeat(np.arange(n), lengths)
    r = rng.random(owner.shape[0])
    skew = rng.random(owner.shape[0]) ** 1.5  # earlier words in a pool are more frequent
    share = config.title_topic_share
    from_sub = r < 0.6 * share
    from_cat = (~from_sub) & (r < share)
    word = general[(skew * n_general).astype(np.int64)]
    word = np.where(
        from_cat, cat_words[catalog.category[owner], (skew * per_cat).astype(np.int64)], word
    )
    word = np.where(
        from_sub, sub_words[catalog.subtopic[owner], (skew * per_sub).astype(np.int64)], word
    )
    words = pl.Series("w", vocabulary(size)).gather(word)
    titles = (
        pl.DataFrame({"item": owner, "w": words})
        .group_by("item", maintain_order=True)
        .agg(pl.col("w").str.join(" "))
    )
    return titles["w"].rename("title")

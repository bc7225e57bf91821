"""What the re-ranker did to one query's ranked list, and why.

The re-ranker (:class:`~funnelrec.rerank.base.ListReranker`) reports only its output (the
kept rows with ``pre_rerank_rank``). Its steps are deterministic, so each item's fate is
derived by re-running the same re-ranker with some rules switched off and comparing the lists:

1. only the first ``rerank.pool`` ranked rows enter (the rest: ``outside_pool``);
2. consumed items and repeats are dropped before diversifying (``filter_consumed``, ``dedupe``);
3. the diversifier (MMR/DPP) picks ``k + slack`` items: re-run with the freshness boost and the
   category cap off and ``k + slack`` items asked for. Greedy selection is prefix-stable, so
   its first ``k + slack`` picks are exactly the ones the real run made (``diversified_rank``);
4. the freshness boost moves fresh items up: re-run with only the category cap off;
5. the category cap defers or drops items: the real output.

An item that was in the top k after one step and not after the next was lost at that step.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.pipeline.trace.models import RerankOutcome
from funnelrec.rerank.base import ItemSide, ListReranker
from funnelrec.rerank.config import RerankConfig


@dataclass(frozen=True)
class RerankFact:
    """One ranked item's fate at re-ranking (ranks are 1-based; None = not there)."""

    item_idx: int
    pre_rerank_rank: int
    outcome: RerankOutcome
    diversified_rank: int | None
    final_rank: int | None
    fresh: bool


@dataclass(frozen=True)
class RerankFacts:
    """Every ranked item's :class:`RerankFact` and notes about the whole list."""

    by_item: dict[int, RerankFact]
    notes: list[str] = field(default_factory=list)


def _positions(frame: pl.DataFrame) -> dict[int, int]:
    """item_idx -> its ``rank`` in a re-ranked frame."""
    return dict(zip(frame["item_idx"].to_list(), frame["rank"].to_list(), strict=True))


def _rerun(
    config: RerankConfig,
    ranked: pl.DataFrame,
    k: int,
    side: ItemSide,
    consumed: dict[int, AbstractSet[int]],
    now: NDArray[np.int64],
) -> dict[int, int]:
    """The positions a re-ranker with ``config`` gives ``ranked``'s items for ``k`` slots."""
    out = ListReranker(config).rerank(ranked, k, side, consumed=consumed, now=now)
    return _positions(out)


def fresh_items(
    item_idx: NDArray[np.integer], side: ItemSide, now: int, config: RerankConfig
) -> NDArray[np.bool_]:
    """Which items the freshness rule calls fresh at ``now`` (always none with it off)."""
    fresh = np.zeros(item_idx.shape[0], dtype=bool)
    if round(config.rules.freshness_boost) <= 0 or side.created_at is None:
        return fresh
    created = np.asarray(side.created_at, dtype=np.int64)
    known = (item_idx >= 0) & (item_idx < created.shape[0])
    age = now - created[np.where(known, item_idx, 0)]
    return known & (age <= config.rules.fresh_age_s)


def _removed_before_diversity(
    items: list[int], consumed: AbstractSet[int], config: RerankConfig
) -> dict[int, RerankOutcome]:
    """The pool items the consumed filter and de-duplication drop (the first copy stays)."""
    removed: dict[int, RerankOutcome] = {}
    seen: set[int] = set()
    for item in items:
        if config.rules.filter_consumed and item in consumed:
            removed.setdefault(item, "filter_consumed")
        elif config.rules.dedupe and item in seen:
            removed.setdefault(item, "dedupe")
        seen.add(item)
    return removed


def explain_rerank(
    config: RerankConfig,
    ranked: pl.DataFrame,
    final: pl.DataFrame,
    k: int,
    side: ItemSide,
    consumed: AbstractSet[int],
    now: int,
) -> RerankFacts:
    """Each ranked item's fate at re-ranking (module docstring).

    Args:
        config: the re-ranker's config (as it ran: the funnel may have switched it to rules
            only).
        ranked: ONE query's re-rank input (``query_id, item_idx, score, rank``).
        final: that query's re-ranked rows (``item_idx, rank, pre_rerank_rank``).
        k: the list length asked for.
        side: the item data the re-ranker read.
        consumed: the user's history items (what ``filter_consumed`` drops).
        now: the request time (freshness).
    """
    ranked = ranked.sort("rank")
    items = [int(i) for i in ranked["item_idx"].to_list()]
    pre_rank = [int(r) for r in ranked["rank"].to_list()]
    query = int(ranked["query_id"][0]) if ranked.height else 0
    consumed_by_query = {query: consumed}
    now_arr = np.array([now], dtype=np.int64)
    no_cap = config.rules.model_copy(update={"max_per_category": None})
    no_rules = no_cap.model_copy(update={"freshness_boost": 0.0})
    diversified = _rerun(
        config.model_copy(update={"rules": no_rules}),
        ranked,
        k + config.slack,
        side,
        consumed_by_query,
        now_arr,
    )
    freshened = _rerun(
        config.model_copy(update={"rules": no_cap}), ranked, k, side, consumed_by_query, now_arr
    )
    final_rank = _positions(final)
    removed = _removed_before_diversity(items[: config.pool], consumed, config)
    fresh = fresh_items(np.asarray(items, dtype=np.int64), side, now, config)
    facts: dict[int, RerankFact] = {}
    eligible = 0  # the item's position in the relevance order the diversifier starts from
    for position, (item, rank) in enumerate(zip(items, pre_rank, strict=True)):
        if item in facts:
            continue  # a repeat: the first copy's fate is the item's
        outcome: RerankOutcome
        if position >= config.pool:
            outcome = "outside_pool"
        elif item in removed:
            outcome = removed[item]
        else:
            eligible += 1
            outcome = _kept_or_lost(item, eligible, k, final_rank, freshened, diversified)
        facts[item] = RerankFact(
            item, rank, outcome, diversified.get(item), final_rank.get(item), bool(fresh[position])
        )
    return RerankFacts(facts, _list_notes(facts, final_rank, k, config))


def _kept_or_lost(
    item: int,
    eligible: int,
    k: int,
    final_rank: dict[int, int],
    freshened: dict[int, int],
    diversified: dict[int, int],
) -> RerankOutcome:
    """The step after which an eligible item was no longer in the top k (if it ever was)."""
    if item in final_rank:
        return "kept"
    if item in freshened:
        return "category_cap"
    if diversified.get(item, k + 1) <= k:
        return "freshness"
    return "diversity" if eligible <= k else "below_k"


def _list_notes(
    facts: dict[int, RerankFact], final_rank: dict[int, int], k: int, config: RerankConfig
) -> list[str]:
    """Whole-list remarks: a list the category cap ended short, a diversifier that is off."""
    notes = []
    if config.method == "rules":
        notes.append("rerank.method = 'rules': no diversifier, business rules only")
    candidates = sum(
        f.outcome not in ("outside_pool", "filter_consumed", "dedupe") for f in facts.values()
    )
    if len(final_rank) < min(k, candidates) and config.rules.max_per_category is not None:
        notes.append(
            f"the category cap (at most {config.rules.max_per_category} per "
            f"{config.rules.category_window} positions) ended the list at {len(final_rank)} "
            f"items, short of k = {k}"
        )
    return notes


def describe(fact: RerankFact, k: int, config: RerankConfig) -> str:
    """One sentence on what the re-ranker did with the item."""
    pre = fact.pre_rerank_rank
    picked = (
        f"the diversifier ({config.method}) placed it at {fact.diversified_rank}"
        if fact.diversified_rank is not None
        else f"the diversifier ({config.method}) did not pick it among its {k + config.slack}"
    )
    rules = config.rules
    match fact.outcome:
        case "kept":
            return f"ranked {pre}, shown at {fact.final_rank}"
        case "below_k":
            return f"ranked {pre}; {picked}: the re-ranker did not lift it into the top {k}"
        case "outside_pool":
            return f"ranked {pre}, beyond the re-ranker's pool of {config.pool}"
        case "filter_consumed":
            return f"ranked {pre}, removed: the user already consumed it (rules.filter_consumed)"
        case "dedupe":
            return f"ranked {pre}, removed: a repeat of a better-ranked copy (rules.dedupe)"
        case "freshness":
            return (
                f"ranked {pre}; {picked}, then fresher items moved up by "
                f"rules.freshness_boost = {rules.freshness_boost:g} pushed it out of the top {k}"
            )
        case "category_cap":
            return (
                f"ranked {pre}; {picked}, but the category cap (at most {rules.max_per_category} "
                f"per {rules.category_window} positions) left it out of the top {k}"
            )
    return f"ranked {pre}; {picked}, below the top {k}: demoted for diversity"

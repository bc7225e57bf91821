"""Do-no-harm guards: a learned stage that makes the list worse is bypassed, and says so.

Every learned stage is judged on the *guard slice*: the latest ``rank.samples.guard_fraction``
of the ranking queries at the end of the training span, which no stage was fitted, early-
stopped or tuned on. Each query's merged candidates carry graded labels (the task values of
the user's events in the window), so NDCG@k of any order of them is defined:

* **rank**: the ranker's order against the merge order it re-sorts;
* **fusion**: the tuned fusion weights against uniform weights (same probabilities);
* **prerank** (when ``rank.prerank`` is on and the ranker is kept): the ranked list with the
  pre-ranker choosing the ``keep`` candidates the ranker scores, against the ranker scoring
  every candidate, allowed to give up at most ``guards.prerank_max_loss`` of its NDCG for
  the ranker time it saves (bypassed: the ranker scores every candidate again);
* **rerank**: the re-ranked list against the list before it, allowed to give up at most
  ``guards.rerank_max_loss`` of its NDCG for diversity.

The ranker, a stage that adds work to every request, is kept when it beats its target (the
merge order plus its required gain) beyond noise: the whole paired interval above zero. The
tuned fusion (and the tuned merge, ``pipeline/merge_tuning.py``) is kept when its mean is
above its baseline's, a tie keeping the baseline; a stage allowed a loss (pre-ranker,
re-ranker), when its mean is at least the baseline less that loss. A learned stage must earn
its place; the simpler stage before it is the default. The ranker,
fusion and pre-ranker are judged on the *warm* queries (users with history) only: cold users
keep the merge order (``Funnel._rank``), so on their queries every order ties. The re-ranker
acts on every list and is judged on all of them.

The paired bootstrap over queries (both orders judged on the same queries, so per-query
difficulty cancels) gives the ``guards.level`` interval of ``mean(stage - baseline)``, reported
with every decision so that a reader sees how sure it is (``worse beyond noise`` when the whole
interval is below zero). Every decision with its numbers goes to ``FitReport.guards`` ->
metrics.json ``guards``, the train summary and the artifact manifest.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.arrays import unique_sorted
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.metrics.intervals import paired_difference
from funnelrec.metrics.rank import auc, auc_interval, gauc, ndcg_per_group, query_positions
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.prerank_fit import window_scores
from funnelrec.pipeline.rank_samples import RankData
from funnelrec.rank.fusion import FusionConfig, fuse
from funnelrec.rank.prerank import teacher_kept
from funnelrec.recall.merge import merge_relevance
from funnelrec.rerank.base import ListReranker

logger = logging.getLogger(__name__)

WARM = "warm queries"
"""The queries the ranker, fusion and pre-ranker are judged on: users with history. A user
without history is served the merge order whatever they do, so their queries would add only
ties, and the ranker's required gain would be asked of them too. On `make demo`'s data, before
this rule and the random guard split, the ranked and the merge order differed on 29 of the
guard's 459 queries (a one-off count at 23ef48c; docs/guards.md)."""


@dataclass(frozen=True)
class GuardDecision:
    """One stage judged against the stage before it on the guard slice.

    Attributes:
        stage: ``rank``, ``fusion``, ``prerank`` or ``rerank``.
        baseline: what it was compared with (``merge order``, ``uniform fusion``, ...).
        metric: e.g. ``ndcg@10``.
        value / baseline_value: the metric of the stage and of the baseline (means over the
            guard queries).
        diff_low / diff_high: the bootstrap interval of ``mean(stage - target)``, where the
            target is the baseline (rerank: the baseline less the allowed loss).
        n_queries: guard queries with at least one labelled item.
        kept: False = the stage was bypassed.
        reason: one line saying why.
        detail: extra measurements (rank: the ranker's AUC with its 95% interval, positives
            and GAUC on the guard slice's warm queries, any positive task as the label, so a
            bypassed ranker's quality is still reported, and ``cold_queries``: the labelled
            guard queries left out of the judgement because their users have no history).
    """

    stage: str
    baseline: str
    metric: str
    value: float
    baseline_value: float
    diff_low: float
    diff_high: float
    n_queries: int
    kept: bool
    reason: str
    detail: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _skip(stage: str, reason: str) -> GuardDecision:
    nan = float("nan")
    return GuardDecision(stage, "", "", nan, nan, nan, nan, 0, True, f"not judged: {reason}")


def judge(
    stage: str,
    baseline: str,
    metric: str,
    values: NDArray[np.float64],
    base_values: NDArray[np.float64],
    allowed_loss: float,
    config: ExperimentConfig,
    rng: np.random.Generator,
    population: str = "queries",
    *,
    beyond_noise: bool = False,
) -> GuardDecision:
    """Keep ``stage`` when its mean reaches ``(1 - allowed_loss) x baseline``; with no loss
    allowed (``allowed_loss <= 0``; a negative one is a required gain), when it exceeds it,
    and with ``beyond_noise``, when the whole interval of the difference lies above zero.
    With no query to judge on, the stage is kept and the decision says so. ``population``
    names the queries judged, in the reason."""
    if values.size == 0:
        return _skip(stage, f"no guard {population} with a labelled positive")
    target = (1.0 - allowed_loss) * base_values
    interval = paired_difference(
        values, target, rng, n_boot=config.guards.n_boot, level=config.guards.level
    )
    # A stage allowed no loss must beat its target: a tie (NDCG 0 against 0 on a few queries
    # whose positives neither order reaches) is no evidence it helps. A stage that adds work
    # (the ranker) must beat it beyond noise: the simpler stage before it serves otherwise.
    if beyond_noise:
        kept = bool(interval.low > 0)
    else:
        kept = bool(interval.mean > 0) if allowed_loss <= 0 else bool(interval.mean >= 0)
    verdict = "kept" if kept else "bypassed"
    if interval.high < 0:
        verdict += " (worse beyond noise)"
    elif not kept:
        verdict += " (not better: no evidence it helps)"
    allowance = ""
    if allowed_loss > 0:
        allowance = f" less the allowed {allowed_loss:.0%}"
    elif allowed_loss < 0:
        allowance = f" plus the required {-allowed_loss:.0%}"
    reason = (
        f"{verdict}: {metric} {values.mean():.4f} vs {baseline}{allowance} "
        f"{target.mean():.4f}, {config.guards.level:.0%} interval of the paired difference "
        f"[{interval.low:+.4f}, {interval.high:+.4f}] over {values.size} {population}"
    )
    return GuardDecision(
        stage,
        baseline,
        metric,
        float(values.mean()),
        float(base_values.mean()),
        interval.low,
        interval.high,
        int(values.size),
        kept,
        reason,
    )


@dataclass(frozen=True)
class _Slice:
    """The guard queries' candidates with graded values, scored by the ranker when there is
    one."""

    frame: pl.DataFrame  # query_id, item_idx, merged_rank, [p_<task>, score], value
    group: NDArray[np.int64]
    value: NDArray[np.float64]

    def is_cold(self, cold: frozenset[int]) -> NDArray[np.bool_]:
        """``[N]`` rows of the queries in ``cold`` (users without history: merge order)."""
        return np.isin(self.group, np.fromiter(cold, dtype=np.int64))

    def ndcg(self, order: NDArray[np.float64], k: int) -> NDArray[np.float64]:
        """Per-query NDCG@k of the candidates ordered by descending ``order``: one value per
        query with a labelled candidate, in ascending query id (:meth:`warm_judged`)."""
        return ndcg_per_group(self.value, order, self.group, k)[1]

    def warm_judged(self, cold: frozenset[int]) -> NDArray[np.bool_]:
        """Which of :meth:`ndcg`'s queries are warm (their users have history)."""
        judged = unique_sorted(self.group[self.value > 0])
        return ~np.isin(judged, np.fromiter(cold, dtype=np.int64))


def _value(guard: pl.DataFrame, tasks: tuple[str, ...], weights: dict[str, float]) -> NDArray:
    value = np.zeros(guard.height)
    for task in tasks:
        value += weights.get(task, 1.0) * guard[f"label_{task}"].to_numpy()
    return value


def apply_guards(
    funnel: Funnel, data: RankData | None, config: ExperimentConfig, rng: np.random.Generator
) -> tuple[GuardDecision, ...]:
    """Judge the funnel's learned stages on ``data.guard`` and bypass the losers in place
    (module docstring). Returns every decision, in stage order."""
    if not config.guards.enabled:
        return ()
    if data is None or data.guard.height == 0:
        return (_skip("rank", "no guard slice (ranking stage off or no samples)"),)
    if "merged_rank" not in data.guard.columns:
        return (_skip("rank", f"guard slice needs recall candidates, not {data.source}"),)
    k = config.guards.k
    labels = [c for c in data.guard.columns if c.startswith("label_")]
    part = _guard_slice(data, config)
    guard = part.frame
    metric = f"ndcg@{k}"
    merge_ndcg = part.ndcg(-guard["merged_rank"].to_numpy().astype(np.float64), k)
    decisions: list[GuardDecision] = []
    before, before_name, scores = merge_ndcg, "merge order", None
    if funnel.ranker is not None:
        scored = funnel.ranker.score(guard.drop(labels), data.log)
        probs = {t: scored[f"p_{t}"].to_numpy() for t in funnel.ranker.tasks}
        decisions.append(_fusion_guard(funnel, part, probs, data.cold_queries, config, rng))
        fused = fuse(probs, funnel.ranker.fusion_config)
        scores = _as_served(part, fused, data.cold_queries)
        rank_ndcg = part.ndcg(scores, k)
        gain, warm = -config.guards.rank_min_gain, part.warm_judged(data.cold_queries)
        decision = judge(
            "rank",
            before_name,
            metric,
            rank_ndcg[warm],
            before[warm],
            gain,
            config,
            rng,
            WARM,
            beyond_noise=True,
        )
        detail = {**_separation(part, fused, data.cold_queries), "cold_queries": int((~warm).sum())}
        decision = dataclasses.replace(decision, detail=detail)
        decisions.append(decision)
        if decision.kept:
            before, before_name = rank_ndcg, "ranked order"
        else:
            funnel.ranker, funnel.rank_log, scores = None, None, None
        if funnel.preranker is not None and funnel.ranker is None:
            # Not judged, but not served either: the report must say it is gone.
            decisions.append(
                dataclasses.replace(_skip("prerank", "the ranker was bypassed"), kept=False)
            )
            funnel.preranker = None
        elif funnel.preranker is not None:
            pre, served = _prerank_guard(funnel, part, fused, data, rank_ndcg, config, rng)
            decisions.append(pre)
            if served is not None:
                before, before_name, scores = served[0], "pre-ranked order", served[1]
    decisions.append(_rerank_guard(funnel, part, scores, before, before_name, config, rng))
    for d in decisions:
        (logger.info if d.kept else logger.warning)("guard %s: %s", d.stage, d.reason)
    return tuple(decisions)


def _guard_slice(data: RankData, config: ExperimentConfig) -> _Slice:
    """The guard samples sorted by query and merged rank, with their graded values."""
    labels = [c for c in data.guard.columns if c.startswith("label_")]
    tasks = tuple(c.removeprefix("label_") for c in labels)
    guard = data.guard.sort("query_id", "merged_rank")
    value = _value(guard, tasks, config.rank.fusion.value_weights)
    return _Slice(guard, guard["query_id"].to_numpy(), value)


def prerank_decision(
    funnel: Funnel, data: RankData, config: ExperimentConfig, rng: np.random.Generator
) -> GuardDecision:
    """The prerank guard alone (benchmarks, tests): ``funnel``'s pre-ranker judged against
    its ranker on ``data.guard`` and bypassed when it loses; the other stages are left as
    they are."""
    if funnel.ranker is None or funnel.preranker is None:
        return _skip("prerank", "no ranker or no pre-ranker")
    if data.guard.height == 0 or "merged_rank" not in data.guard.columns:
        return _skip("prerank", "no guard slice of recall candidates")
    part = _guard_slice(data, config)
    labels = [c for c in data.guard.columns if c.startswith("label_")]
    scored = funnel.ranker.score(part.frame.drop(labels), data.log)
    probs = {t: scored[f"p_{t}"].to_numpy() for t in funnel.ranker.tasks}
    fused = fuse(probs, funnel.ranker.fusion_config)
    rank_ndcg = part.ndcg(_as_served(part, fused, data.cold_queries), config.guards.k)
    return _prerank_guard(funnel, part, fused, data, rank_ndcg, config, rng)[0]


def _prerank_guard(
    funnel: Funnel,
    part: _Slice,
    fused: NDArray[np.float64],
    data: RankData,
    rank_ndcg: NDArray[np.float64],
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> tuple[GuardDecision, tuple[NDArray[np.float64], NDArray[np.float64]] | None]:
    """The list as served with the pre-ranker (the ranker orders the ``keep`` it picks, its
    other candidates follow in its order; cold users keep the merge order) against the ranked
    list without it, within ``guards.prerank_max_loss``. A loser is dropped from the funnel.

    Returns:
        The decision and, when kept, the served list's per-query NDCG and the relevance the
        re-ranker then receives (the ranker's scores; a cut candidate reads the lowest kept
        score of its query, as the re-ranker fills a null score from the row above).
    """
    assert funnel.preranker is not None
    pre, k = funnel.preranker, config.guards.k
    pre_scores = window_scores(pre, part.frame, data.log, config.data.positive_events)
    kept = query_positions(part.group, pre_scores) < pre.config.keep
    # Kept first by the ranker's score, then the cut by the pre-ranker's (each tier in its own
    # scale), ties in merged order, as Funnel._rank serves them.
    primary = np.where(kept, fused, pre_scores)
    merged_rank = part.frame["merged_rank"].to_numpy()
    order = np.lexsort((merged_rank, -primary, ~kept, part.group))
    sequence = np.empty(order.size, dtype=np.float64)
    sequence[order] = np.arange(order.size)
    after = part.ndcg(_as_served(part, -sequence, data.cold_queries), k)
    allowed, warm_queries = config.guards.prerank_max_loss, part.warm_judged(data.cold_queries)
    metric = f"ndcg@{k}"
    decision = judge(
        "prerank",
        "ranked order",
        metric,
        after[warm_queries],
        rank_ndcg[warm_queries],
        allowed,
        config,
        rng,
        WARM,
    )
    warm = ~part.is_cold(data.cold_queries)
    share, n_cut = teacher_kept(pre_scores[warm], fused[warm], part.group[warm], pre.config.keep, k)
    detail = {f"top{k}_kept": share, "queries_cut": n_cut}
    decision = dataclasses.replace(decision, detail=detail)
    if not decision.kept:
        funnel.preranker = None
        return decision, None
    _, code = np.unique(part.group, return_inverse=True)
    lowest = np.full(code.max() + 1 if code.size else 0, np.inf)
    np.minimum.at(lowest, code[kept], fused[kept])
    relevance = _as_served(part, np.where(kept, fused, lowest[code]), data.cold_queries)
    return decision, (after, relevance)


def _separation(
    part: _Slice, scores: NDArray[np.float64], cold: frozenset[int]
) -> dict[str, float]:
    """AUC and GAUC of the ranker's scores on the guard slice's warm queries (label: any
    positive task). Cold users' candidates keep the merge order, whose values (negated ranks)
    are not on the scores' scale: pooled with them, AUC would measure the mix, not the ranker."""
    warm = ~part.is_cold(cold)
    positive = part.value[warm] > 0
    if positive.all() or not positive.any():
        return {}
    scores, group = scores[warm], part.group[warm]
    value, n_pos = auc(positive, scores), int(positive.sum())
    low, high = auc_interval(value, n_pos, positive.size - n_pos)
    grouped = gauc(positive, scores, group)
    return {
        "auc": value,
        "auc_low": low,
        "auc_high": high,
        "n_positives": n_pos,
        "gauc": grouped.value,
    }


def _as_served(part: _Slice, scores: NDArray[np.float64], cold: frozenset[int]) -> NDArray:
    """The order the funnel serves: the ranker's scores for warm users, the merge order for
    users without history (``Funnel._rank`` holds their candidates)."""
    if not cold:
        return scores
    is_cold = part.is_cold(cold)
    merge_order = -part.frame["merged_rank"].to_numpy().astype(np.float64)
    return np.where(is_cold, merge_order, scores)


def _fusion_guard(
    funnel: Funnel,
    part: _Slice,
    probs: dict[str, NDArray[Any]],
    cold: frozenset[int],
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> GuardDecision:
    """Tuned fusion weights against uniform ones; reverts to uniform when worse."""
    assert funnel.ranker is not None
    ranker = funnel.ranker
    uniform = FusionConfig(kind="weighted_sum", weights={t: 1.0 for t in ranker.tasks})
    tuned = ranker.fusion_config
    if config.rank.fusion.formula is not None or tuned == uniform:
        return _skip("fusion", "no fusion search ran (fixed formula or one task)")
    k = config.guards.k
    warm = part.warm_judged(cold)
    tuned_ndcg = part.ndcg(_as_served(part, fuse(probs, tuned), cold), k)[warm]
    uniform_ndcg = part.ndcg(_as_served(part, fuse(probs, uniform), cold), k)[warm]
    metric = f"ndcg@{k}"
    decision = judge(
        "fusion", "uniform fusion", metric, tuned_ndcg, uniform_ndcg, 0, config, rng, WARM
    )
    if not decision.kept:
        ranker.fusion_config = uniform
    return decision


def _rerank_guard(
    funnel: Funnel,
    part: _Slice,
    scores: NDArray[np.float64] | None,
    before: NDArray[np.float64],
    before_name: str,
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> GuardDecision:
    """The re-ranked top-k against the list before it, within the allowed loss; a losing
    diversifier is replaced by the business rules alone."""
    reranker = funnel.reranker
    if reranker is None or funnel.config.rerank.method == "rules":
        return _skip("rerank", "no diversifying re-ranker (rules only)")
    k = config.guards.k
    frame = part.frame.select("query_id", "item_idx", "merged_rank", "source")
    merged_rank = frame["merged_rank"].to_numpy().astype(np.float64)
    # What the funnel hands the re-ranker: the ranker's scores, else the merge relevance.
    order = merge_relevance(merged_rank, funnel.merge_config.rrf_k) if scores is None else scores
    ordered = frame.with_columns(pl.Series("score", order, dtype=pl.Float32)).with_columns(
        pl.col("score")
        .rank("ordinal", descending=True)
        .over("query_id")
        .cast(pl.Int32)
        .alias("rank")
    )
    side = funnel.item_side()
    if funnel.reranker is not reranker:  # the item side switched it to rules: nothing to judge
        return _skip("rerank", "no item vectors or categories (rules only)")
    reranked = reranker.rerank(ordered.sort("query_id", "rank"), k, side)
    position = ordered.join(  # rows stay aligned with the slice
        reranked.select("query_id", "item_idx", pl.col("rank").alias("_new")),
        on=["query_id", "item_idx"],
        how="left",
        maintain_order="left",
    )
    new_order = -position["_new"].fill_null(10**9).to_numpy().astype(np.float64)
    after = part.ndcg(new_order, k)
    allowed = config.guards.rerank_max_loss
    metric = f"ndcg@{k}"
    decision = judge("rerank", before_name, metric, after, before, allowed, config, rng)
    if not decision.kept:
        rules = funnel.config.rerank.model_copy(update={"method": "rules"})
        funnel.config = funnel.config.model_copy(update={"rerank": rules})
        funnel.reranker = ListReranker(rules)
    return decision

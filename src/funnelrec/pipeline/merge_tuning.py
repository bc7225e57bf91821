"""Tuned merging: reciprocal-rank-fusion weights fitted on the end of the training span.

Fixed quotas assume the data: on a log where recency dominates, popularity deserves most of
the list; where co-occurrence dominates, ItemCF does. The recall window (recall fitted on the
time before the ranking window, asked for every user who acted in it) shows what each channel
would have recalled, and the window's positives say what was wanted. The weights of a
weighted RRF merge (:class:`~funnelrec.recall.merge.MergeConfig`) are searched on the window's
training queries, then judged on its guard queries against the configured merge with the same
paired bootstrap as the other guards (:mod:`funnelrec.pipeline.guards`): the tuned merge is
used when its mean is higher and it is not worse beyond noise, and the decision is recorded.

The objective serves both consumers of the merge: ``0.5 * NDCG@k`` of the merged order (what
is served when no ranker is kept) ``+ 0.5 * Recall@rank.serve.score_k`` (the set the ranker
re-orders), per query.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.pipeline.guards import GuardDecision, judge
from funnelrec.pipeline.rank_samples import RecallWindow
from funnelrec.pipeline.window_truth import WindowPart, window_parts
from funnelrec.recall.base import ChannelResult
from funnelrec.recall.merge import MergeConfig, candidates_to_matrix, merge_channels

logger = logging.getLogger(__name__)

N_TRIALS = 48
"""Random weightings tried after the uniform one (log-normal around 1, seeded)."""


@dataclass(frozen=True)
class _Slice:
    """Channel results and truth of some window queries."""

    results: list[ChannelResult]
    part: WindowPart

    def objective(self, merge: MergeConfig, k: int, depth: int) -> NDArray[np.float64]:
        """Per query: 0.5 NDCG@k of the merged order + 0.5 Recall@depth of the merged set."""
        query_id = self.part.queries.query_id
        merged = merge_channels(self.results, query_id, merge)
        matrix = candidates_to_matrix(merged, query_id, max(k, depth))
        return self.part.objective(matrix, k, depth)


def _window_slices(window: RecallWindow, config: ExperimentConfig) -> tuple[_Slice, _Slice] | None:
    """(fit queries, guard queries) of the window, with every channel's results."""
    parts = window_parts(window, config)
    if parts is None:
        return None
    slices = []
    for part in parts:
        results, _ = window.funnel.retrieve(part.queries)
        slices.append(_Slice(list(results.values()), part))
    return slices[0], slices[1]


LEADER_SHARE = 0.01
"""Weight of the other channels in a "one channel leads" trial: its order first, the others
filling in behind (RRF weights far apart make the merge nearly lexicographic)."""


def _candidates(names: list[str], rng: np.random.Generator) -> list[dict[str, float]]:
    """Uniform weights, each channel leading alone (so the tuned merge is never worse than
    the best single channel on the window), then seeded log-normal weightings."""
    trials = [dict.fromkeys(names, 1.0)]
    for leader in names:
        trials.append({n: 1.0 if n == leader else LEADER_SHARE for n in names})
    for _ in range(N_TRIALS):
        draw = np.exp(rng.normal(0.0, 1.0, size=len(names)))
        trials.append({n: float(w) for n, w in zip(names, draw / draw.max(), strict=True)})
    return trials


def tune_merge(
    window: RecallWindow, config: ExperimentConfig, rng: np.random.Generator
) -> tuple[MergeConfig, GuardDecision]:
    """The merge to use (tuned RRF or the configured one) and the decision that chose it."""
    configured = window.funnel.merge_config
    slices = _window_slices(window, config)
    if slices is None:
        nan = float("nan")
        reason = "not judged: fewer than 10 window queries with a positive (kept the configured)"
        return configured, GuardDecision("merge", "", "", nan, nan, nan, nan, 0, True, reason)
    fit, guard = slices
    k, depth = config.guards.k, config.rank.serve.score_k
    names = [r.channel for r in fit.results]
    best, best_value = configured, -np.inf
    for weights in _candidates(names, rng):
        merge = configured.model_copy(update={"method": "rrf", "weights": weights})
        value = float(fit.objective(merge, k, depth).mean())
        if value > best_value:
            best, best_value = merge, value
    metric = f"0.5 ndcg@{k} + 0.5 recall@{depth}"
    tuned = guard.objective(best, k, depth)
    base = guard.objective(configured, k, depth)
    baseline = f"configured {configured.method}"
    decision = judge("merge", baseline, metric, tuned, base, 0.0, config, rng)
    use = bool(decision.kept and tuned.mean() > base.mean())
    shown = ", ".join(f"{n} {w:.2f}" for n, w in best.weights.items())
    reason = (
        f"{'tuned rrf used' if use else 'configured merge kept'} ({shown}); "
        + decision.reason.split(": ", 1)[1]
    )
    decision = dataclasses.replace(decision, kept=use, reason=reason)
    logger.info("merge tuning: %s", reason)
    return (best if use else configured), decision

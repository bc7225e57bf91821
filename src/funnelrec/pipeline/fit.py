"""``fit_funnel``: the one way to train the whole funnel.

``funnelrec run`` (evaluation: fit on the training side of a split), ``funnelrec train``
(production: fit on every row), ``Recommender.fit`` (notebooks) and the benchmarks all call
:func:`fit_funnel`, so what is evaluated is what is deployed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.events import require_positives
from funnelrec.errors import MissingInputError
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.guards import GuardDecision, apply_guards
from funnelrec.pipeline.merge_tuning import tune_merge
from funnelrec.pipeline.prerank_fit import fit_prerank
from funnelrec.pipeline.rank_samples import (
    RankData,
    RecallWindow,
    build_rank_data,
    recall_window,
    sample_source,
)
from funnelrec.pipeline.recall_fit import fit_recall
from funnelrec.pipeline.recall_tuning import ChannelTuning, tune_channels
from funnelrec.rank.ranker import Ranker
from funnelrec.recall.merge import MergeConfig

logger = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; the CLI renders it with rich."""


RANK_LOG_COLUMNS = ("user_idx", "item_idx", "timestamp", "event")


@dataclass(frozen=True)
class RankTraining:
    """How the ranker was trained: its samples' provenance and the fit statistics.

    Attributes:
        data: the training/validation samples and their label rules.
        stats: the ranker's fit statistics (epochs, losses, fusion search, health findings).
    """

    data: RankData
    stats: dict[str, Any]


@dataclass(frozen=True)
class FitReport:
    """What :func:`fit_funnel` did.

    Attributes:
        timings_s: wall seconds per step (``fit.<channel>``, ``rank.samples``, ``fit.rank``).
        skipped: recall channels left out, with the reason.
        rank: the ranker's training record; None when the stage is disabled or skipped.
        rank_skipped: why the enabled ranking stage was skipped (no samples), else None.
        guards: the do-no-harm decisions (:mod:`funnelrec.pipeline.guards`), stage by stage.
        recall_tuning: the channel settings tried and chosen (``recall.tune``).
    """

    timings_s: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    rank: RankTraining | None = None
    rank_skipped: str | None = None
    guards: tuple[GuardDecision, ...] = ()
    recall_tuning: tuple[ChannelTuning, ...] = ()


def fit_funnel(
    config: ExperimentConfig,
    data: Dataset,
    rng: np.random.Generator,
    *,
    work_dir: Path | None = None,
    progress: ProgressFn | None = None,
    cls: type[Funnel] = Funnel,
) -> tuple[Funnel, FitReport]:
    """Fit recall channels, the ranker (samples from the end of ``data``'s time span) and the
    re-ranker, honouring every ``enabled`` switch of ``config``.

    With the ranking stage on, recall is fitted first on the time before the ranking window
    (the window's candidates, the channel and merge tuning come from it); the funnel's own
    channels are fitted on ``data`` after it, with the tuned settings, each starting from its
    window fit where it can (a warm start: that fit saw only rows of ``data``).

    Args:
        config: the funnel's configuration.
        data: what the funnel may learn from (a split's training side, or every row).
        rng: the one source of randomness (sampling, initialisation order).
        work_dir: where by-products go (``diagnostics/``: the ranker's training health).
        progress: optional ``progress(stage, done, total)`` callback.

    Returns:
        The fitted funnel (an instance of ``cls``) and a :class:`FitReport`.

    A stage whose input the data lacks is skipped with the reason in the report: a recall
    channel (``skipped``: a content channel without item texts), or the ranker
    (``rank_skipped``: no ranking samples in the training window; the funnel then serves the
    merge order).

    Raises:
        DataError: the data has no positive interaction (nothing to learn from).
        MissingInputError: no recall channel could be fitted.
    """
    require_positives(data.interactions, data.positive_events, "training rows")
    timings: dict[str, float] = {}
    before = _WindowStage(config)
    if config.rank.enabled:
        if progress is not None:
            progress("rank.fit", 0, 1)
        before = _fit_window(config, data, rng, timings)
    if progress is not None:
        progress("fit", 0, 1)
    earlier = None if before.window is None else before.window.funnel
    recall = fit_recall(before.config, data, rng, earlier=earlier, cls=cls)
    recommender = recall.recommender
    timings.update(recall.timings_s)
    if progress is not None:
        progress("fit", 1, 1)
    if before.merge is not None:
        recommender.use_merge(before.merge[0])
    merge_decisions = () if before.merge is None else (before.merge[1],)
    skipped, tuning = dict(recall.skipped), before.tuning
    rank = None
    if config.rank.enabled:
        start = time.perf_counter()
        try:
            if before.error is not None:
                raise before.error
            rank_data = build_rank_data(data, config, rng, before.window)
        except MissingInputError as e:
            # Too little data to learn a ranker from: serve the merge order, and say so.
            logger.warning("ranking stage skipped: %s", e)
            report = FitReport(timings, skipped, None, rank_skipped=str(e), recall_tuning=tuning)
            recommender.fit_report = report
            return recommender, report
        timings["rank.samples"] += time.perf_counter() - start
        rank = _fit_ranker(recommender, rank_data, data, config, work_dir, timings)
        if progress is not None:
            progress("rank.fit", 1, 1)
    start = time.perf_counter()
    guards = merge_decisions + apply_guards(
        recommender, None if rank is None else rank.data, config, rng
    )
    timings["guards"] = time.perf_counter() - start
    report = FitReport(timings, skipped, rank, guards=guards, recall_tuning=tuning)
    recommender.fit_report = report
    return recommender, report


@dataclass(frozen=True)
class _WindowStage:
    """What the ranking window gave before the funnel's own recall fit.

    Attributes:
        config: the config the funnel's recall is fitted with (the tuned channel settings).
        window: recall fitted before the window and its queries (None: none was made, the
            ranker's samples being impressions, or ``error``).
        error: why no window could be made (the ranking stage is then skipped with it).
        tuning: the channel settings tried and chosen on the window.
        merge: the merge chosen on the window and the decision that chose it.
    """

    config: ExperimentConfig
    window: RecallWindow | None = None
    error: MissingInputError | None = None
    tuning: tuple[ChannelTuning, ...] = ()
    merge: tuple[MergeConfig, GuardDecision] | None = None


def _fit_window(
    config: ExperimentConfig, data: Dataset, rng: np.random.Generator, timings: dict[str, float]
) -> _WindowStage:
    """Recall fitted on the time before the ranking window, and the channel settings and
    merge tuned on it. It comes before the funnel's own recall fit, which starts from it (a
    warm start, where a channel can) and uses what was tuned. Its seconds start
    ``timings["rank.samples"]`` (and ``recall.tune``)."""
    start = time.perf_counter()
    try:
        if sample_source(data, config) != "recall":
            return _WindowStage(config)
        window = recall_window(data, config, rng)
        tuning, fit_config = _tune_on_window(window, config, rng, timings)
        merge = None
        if config.recall.merge.tune:
            merge = tune_merge(window, config, rng)
            window.funnel.use_merge(merge[0])
        return _WindowStage(fit_config, window, None, tuning, merge)
    except MissingInputError as e:
        return _WindowStage(config, error=e)
    finally:
        timings["rank.samples"] = time.perf_counter() - start


def _tune_on_window(
    window: RecallWindow,
    config: ExperimentConfig,
    rng: np.random.Generator,
    timings: dict[str, float],
) -> tuple[tuple[ChannelTuning, ...], ExperimentConfig]:
    """Tune the channels of ``config.recall.tune`` on ``window`` (``recall.tune``): what was
    tried and chosen, and ``config`` with the chosen settings (the window's funnel records
    them as it swaps the tuned channels in)."""
    if not config.recall.tune:  # the channel kinds to tune; () = off
        return (), config
    start = time.perf_counter()
    tuning = tuple(tune_channels(window, config, rng))
    timings["recall.tune"] = time.perf_counter() - start
    channels = window.funnel.config.recall.channels
    return tuning, config.model_copy(
        update={"recall": config.recall.model_copy(update={"channels": channels})}
    )


def _fit_ranker(
    recommender: Funnel,
    rank_data: RankData,
    data: Dataset,
    config: ExperimentConfig,
    work_dir: Path | None,
    timings: dict[str, float],
) -> RankTraining:
    """Fit the ranker on ``rank_data`` (and the pre-ranker distilled from it, when enabled),
    install them in ``recommender`` and add their fit times to ``timings``."""
    start = time.perf_counter()
    health_dir = None if work_dir is None else Path(work_dir) / "diagnostics"
    ranker = Ranker(config.rank, rank_data.tasks).fit(
        data, rank_data.train, rank_data.valid, rank_data.log, health_dir=health_dir
    )
    timings["fit.rank"] = time.perf_counter() - start
    recommender.set_ranker(ranker, data.interactions.select(RANK_LOG_COLUMNS))
    stats = dict(ranker.stats)
    if config.rank.prerank.enabled:  # distilled from the ranker just fitted
        start = time.perf_counter()
        stats["prerank"] = fit_prerank(recommender, rank_data, data, config)
        timings["fit.prerank"] = time.perf_counter() - start
    return RankTraining(rank_data, stats)

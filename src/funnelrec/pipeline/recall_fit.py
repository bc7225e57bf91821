"""Fit the recall half of the funnel: every configured channel, skipping those whose input the
data lacks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.errors import MissingInputError
from funnelrec.pipeline.context import ItemContext, UserContext
from funnelrec.pipeline.funnel import Funnel
from funnelrec.recall.base import Retriever
from funnelrec.recall.registry import ChannelConfig, build_retriever, warm_started

logger = logging.getLogger(__name__)

ChannelFitter = Callable[[ChannelConfig, Dataset, np.random.Generator, Retriever | None], Retriever]
"""Fits one recall channel: ``fitter(channel_config, data, rng, earlier) -> fitted channel``,
where ``earlier`` is the same channel fitted on a subset of ``data`` (or None): a channel
that can (:class:`~funnelrec.recall.base.WarmStartable`) starts from it."""


def fit_on_this_machine(
    config: ChannelConfig,
    data: Dataset,
    rng: np.random.Generator,
    earlier: Retriever | None = None,
) -> Retriever:
    """The default :data:`ChannelFitter`: the channel's own (single-machine) fit."""
    return warm_started(build_retriever(config), earlier).fit(data, rng=rng)


_FITTER: ContextVar[ChannelFitter] = ContextVar("channel_fitter", default=fit_on_this_machine)


@contextmanager
def channel_fitter(fitter: ChannelFitter) -> Iterator[None]:
    """Fit every recall channel inside the block with ``fitter`` (``train --engine spark``).

    A context rather than a parameter: channels are fitted in four places (the funnel, the
    ranking window's funnel, the recall-tuning trials and the tuned refit), and all of them
    must use the same engine.
    """
    token = _FITTER.set(fitter)
    try:
        yield
    finally:
        _FITTER.reset(token)


def fit_channel(
    config: ChannelConfig,
    data: Dataset,
    rng: np.random.Generator,
    earlier: Retriever | None = None,
) -> Retriever:
    """Fit one channel with the fitter in effect (:func:`channel_fitter`), warm-started from
    ``earlier`` (the channel fitted on a subset of ``data``) where the channel can be."""
    return _FITTER.get()(config, data, rng, earlier)


@dataclass(frozen=True)
class RecallFit:
    """A recommender with its channels fitted (no ranker yet), and how the fit went.

    Attributes:
        recommender: recall -> merge -> (rules) re-rank, ready to answer queries.
        timings_s: ``fit.<channel>`` wall seconds.
        skipped: channels left out, with the reason (their input is missing from the data).
    """

    recommender: Funnel
    timings_s: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def fit_recall(
    config: ExperimentConfig,
    data: Dataset,
    rng: np.random.Generator,
    *,
    earlier: Funnel | None = None,
    cls: type[Funnel] = Funnel,
) -> RecallFit:
    """Fit every channel of ``config.recall`` on ``data`` into a ``cls`` funnel.

    A channel whose input is missing (a content channel without an items table) raises
    :class:`MissingInputError` and is skipped with a warning. With ``earlier`` (recall fitted
    on a subset of ``data``: the time before the ranking window), each channel that can
    starts from its namesake there
    (:func:`~funnelrec.recall.registry.warm_started`).

    Raises:
        MissingInputError: no channel could be fitted at all.
    """
    channels: dict[str, Retriever] = {}
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name, channel_config in config.recall.channels.items():
        start = time.perf_counter()
        try:
            before = None if earlier is None else earlier.channels.get(name)
            channels[name] = fit_channel(channel_config, data, rng, before)
        except MissingInputError as e:
            logger.warning("recall channel '%s' skipped: %s", name, e)
            skipped[name] = str(e)
            continue
        timings[f"fit.{name}"] = time.perf_counter() - start
    if not channels:
        raise MissingInputError(f"no recall channel could be fitted: {skipped}")
    recommender = cls(
        config,
        channels,
        data.user_vocab,
        data.item_vocab,
        data.positives,
        UserContext.from_dataset(data),
        ItemContext.from_dataset(data),
        skipped=skipped,
    )
    return RecallFit(recommender, timings, skipped)

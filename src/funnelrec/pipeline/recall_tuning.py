"""Channel settings chosen on the recall window (``recall.tune`` lists the channel kinds):
ItemCF's normalisation ``alpha`` and pair-age decay, EASE's lambda, the two-tower's epochs.

The defaults were tuned on the project's own benchmarks; a new log may want others (a catalogue
where recency dominates wants the pair-age decay, one where it does not wants it off; a sparse
log overfits the two-tower's id embeddings in fewer epochs). Each candidate setting is fitted
on the time before the window (what the window's recall was fitted on) and scored, channel
alone, on the window's fit queries with the merge tuning's objective (``0.5 NDCG@guards.k +
0.5 Recall@rank.serve.score_k``, :mod:`funnelrec.pipeline.window_truth`). The configured
setting is tried first and kept unless another scores higher; trials stop once
``recall.tune_budget_s`` is spent. The funnel's own fit on all the data, which runs after the
window's, uses the winner. Each choice, with
every score and the seconds spent, is logged and reported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.pipeline.rank_samples import RecallWindow
from funnelrec.pipeline.recall_fit import fit_channel
from funnelrec.pipeline.window_truth import WindowPart, window_parts
from funnelrec.recall.base import Retriever
from funnelrec.recall.registry import ChannelConfig

logger = logging.getLogger(__name__)

DAY_S = 86400.0
GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "itemcf": {"alpha": (0.25, 0.5, 0.75), "pair_half_life_s": (14 * DAY_S, None)},
    "ease": {"regularization": (50.0, 200.0, 1000.0)},
    "two_tower": {"train.epochs": (1, 3, 6)},
}
"""Settings tried per channel kind (every combination), after the configured one."""


@dataclass(frozen=True)
class ChannelTuning:
    """One channel's tuning: the scores of each setting tried and the one chosen."""

    channel: str
    chosen: dict[str, Any]
    trials: list[dict[str, Any]]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "chosen": self.chosen,
            "trials": self.trials,
            "seconds": round(self.seconds, 2),
        }


def _parent(data: dict[str, Any], key: str) -> tuple[dict[str, Any], str]:
    """The dict holding dotted ``key`` in a dumped config, and the key's last part."""
    *path, last = key.split(".")
    for part in path:
        data = data[part]
    return data, last


def _with(config: ChannelConfig, setting: dict[str, Any]) -> ChannelConfig:
    """``config`` with ``setting`` applied (dotted keys reach nested models)."""
    data = config.model_dump()
    for key, value in setting.items():
        node, last = _parent(data, key)
        node[last] = value
    return type(config).model_validate(data)


def _current(config: ChannelConfig, keys: list[str]) -> dict[str, Any]:
    """The configured values of dotted ``keys``."""
    data = config.model_dump()
    return {key: node[last] for key in keys for node, last in [_parent(data, key)]}


def _settings(grid: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    combos: list[dict[str, Any]] = [{}]
    for key, values in grid.items():
        combos = [{**c, key: v} for c in combos for v in values]
    return combos


def _score(channel: Retriever, part: WindowPart, config: ExperimentConfig) -> float:
    result = channel.retrieve(part.queries)
    k, depth = config.guards.k, config.rank.serve.score_k
    matrix = result.item_idx
    if matrix.shape[1] < max(k, depth):
        pad = np.full((matrix.shape[0], max(k, depth) - matrix.shape[1]), -1, dtype=np.int32)
        matrix = np.hstack([matrix, pad])
    return float(part.objective(matrix, k, depth).mean())


def _tune_one(
    name: str,
    window: RecallWindow,
    part: WindowPart,
    config: ExperimentConfig,
    rng: np.random.Generator,
    deadline: float,
) -> tuple[ChannelTuning, Retriever] | None:
    """The best setting of channel ``name`` on ``part`` and its channel fitted on the window's
    earlier data; None when the channel is not tunable or was not fitted."""
    configured = config.recall.channels[name]
    grid = GRIDS.get(configured.kind) if configured.kind in config.recall.tune else None
    channel = window.funnel.channels.get(name)
    if grid is None or channel is None:
        return None
    start = time.perf_counter()
    current = _current(configured, list(grid))
    best_setting, best_channel = current, channel
    best = _score(channel, part, config)
    trials = [{**current, "score": round(best, 5)}]
    for setting in _settings(grid):
        if setting == current:
            continue
        if time.perf_counter() > deadline:
            logger.info("recall tuning: budget spent, %s stops after %d trials", name, len(trials))
            break
        fitted = fit_channel(_with(configured, setting), window.earlier, rng)
        value = _score(fitted, part, config)
        trials.append({**setting, "score": round(value, 5)})
        if value > best:
            best, best_setting, best_channel = value, setting, fitted
    tuning = ChannelTuning(name, best_setting, trials, time.perf_counter() - start)
    logger.info("recall tuning: %s -> %s (%.1f s)", name, best_setting, tuning.seconds)
    return tuning, best_channel


def tune_channels(
    window: RecallWindow, config: ExperimentConfig, rng: np.random.Generator
) -> list[ChannelTuning]:
    """Tune every tunable channel on the window; a changed channel is swapped into the
    window's funnel (as fitted on the earlier data), which records its chosen config for the
    funnel's own fit. Returns what was tried and chosen (empty when the window is too small)."""
    parts = window_parts(window, config)
    if parts is None:
        logger.info("recall tuning skipped: too few window queries with a positive")
        return []
    deadline = time.perf_counter() + config.recall.tune_budget_s
    out = []
    for name in list(config.recall.channels):
        tuned = _tune_one(name, window, parts[0], config, rng, deadline)
        if tuned is None:
            continue
        tuning, channel = tuned
        out.append(tuning)
        if channel is not window.funnel.channels[name]:
            window.funnel.use_channel(name, channel)
    return out

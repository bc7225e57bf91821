"""The public recommender: the :class:`~funnelrec.pipeline.funnel.Funnel` with its constructors.

``Recommender.fit`` calls :func:`~funnelrec.pipeline.fit.fit_funnel` (the one way to train,
shared with ``funnelrec run`` and ``funnelrec train``); ``save`` / ``load`` go through the
artifact format. Keeping them out of :class:`Funnel` keeps the modules acyclic: training and
persistence build funnels, and this class builds on both.

Example:
    >>> import polars as pl
    >>> import funnelrec as fr
    >>> log = pl.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 11, 10, 12, 11],
    ...                     "timestamp": [1, 2, 3, 4, 5]})
    >>> ds = fr.Dataset.from_frame(log)
    >>> config = fr.FunnelConfig(
    ...     recall={"channels": {"popular": {"kind": "popular"}}, "merge": {"quotas": {}}},
    ...     rank={"enabled": False},
    ... )
    >>> rec = fr.Recommender.fit(ds, config)
    >>> rec.recommend([1], k=2)["item_id"].to_list()
    [12]
"""

from __future__ import annotations

from pathlib import Path
from typing import Self, cast

import numpy as np

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.pipeline.fit import ProgressFn, fit_funnel
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.persist import load_recommender, save_recommender


class Recommender(Funnel):
    """A fitted funnel you can train, query, save and load (see the module docstring)."""

    @classmethod
    def fit(
        cls,
        dataset: Dataset,
        config: ExperimentConfig | None = None,
        *,
        rng: np.random.Generator | None = None,
        work_dir: Path | None = None,
        progress: ProgressFn | None = None,
    ) -> Self:
        """Fit the whole funnel on ``dataset`` (:func:`~funnelrec.pipeline.fit.fit_funnel`).

        Args:
            dataset: what to learn from (see :meth:`Dataset.from_frame`).
            config: the funnel's configuration; default :meth:`FunnelConfig.default`.
            rng: randomness; default seeded from ``config.seed``.
            work_dir: where training by-products (ranker diagnostics) go.
            progress: optional ``progress(stage, done, total)`` callback.

        Returns:
            The fitted recommender; its :attr:`fit_report` says what was fitted and skipped.
        """
        config = config or ExperimentConfig()
        rng = rng if rng is not None else np.random.default_rng(config.seed)
        recommender, _ = fit_funnel(
            config, dataset, rng, work_dir=work_dir, progress=progress, cls=cls
        )
        return cast(Self, recommender)  # fit_funnel built it as cls

    def save(self, path: str | Path) -> Path:
        """Write the fitted funnel to the artifact directory ``path`` (see
        :mod:`funnelrec.artifacts`), golden set included; returns the manifest path."""
        return save_recommender(self, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load and verify an artifact directory written by :meth:`save` (or ``funnelrec
        train``)."""
        return cast(Self, load_recommender(Path(path), cls=cls))  # built as cls

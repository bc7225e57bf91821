"""The point-in-time featurizer: fit on training samples, transform samples of any time."""

from __future__ import annotations

import dataclasses
import logging
from typing import Self

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.features.behaviours import SequenceBlock
from funnelrec.features.pit.config import (
    DAY_S,
    EXTRA_COLUMNS,
    IMPRESSION,
    LOG_COLUMNS,
    SAMPLE_COLUMNS,
    USER_SIDE_PREFIX,
    PointInTimeConfig,
    dense_feature_names,
)
from funnelrec.features.pit.dense import assemble_dense
from funnelrec.features.pit.evidence import evidence_columns
from funnelrec.features.pit.log import EventRules, LogArrays, relevant_events, require_columns
from funnelrec.features.pit.prepared import PreparedLog, prepare_log
from funnelrec.features.pit.request import OneQuery, one_query_dense, one_query_sparse
from funnelrec.features.pit.sequences import DeferredSequences, sequences
from funnelrec.features.pit.state import FittedState
from funnelrec.features.spec import FeatureSpec, RankFeatures

logger = logging.getLogger(__name__)


class PointInTimeFeatures:
    """Ranking features computed as of each sample's timestamp (config + fit + transform).

    Example:
        >>> from funnelrec.data.simulator import SimulatorConfig, simulate
        >>> from funnelrec.rank.samples import SampleConfig, impression_samples
        >>> sim = simulate(SimulatorConfig.for_interactions(5_000, seed=1))
        >>> data = Dataset.build(sim.interactions, sim.items, sim.users)
        >>> samples = impression_samples(data.interactions, SampleConfig())
        >>> pit = PointInTimeFeatures(PointInTimeConfig()).fit(data, samples, data.interactions)
        >>> feats = pit.transform(samples, data.interactions)
        >>> feats.sparse.shape[0] == samples.height, feats.spec.tasks
        (True, ('click', 'cart', 'order'))
    """

    def __init__(self, config: PointInTimeConfig) -> None:
        self.config = config
        self._fitted: FittedState | None = None
        self._spec: tuple[FittedState, FeatureSpec] | None = None  # spec of that state

    # ------------------------------------------------------------------ fit / transform
    def fit(self, data: Dataset, samples: pl.DataFrame, log: pl.DataFrame | None = None) -> Self:
        """Fit vocabulary sizes and the dense standardisation on training samples.

        Args:
            data: the training Dataset (vocabularies, items' categories and created_at, users'
                attributes, and ``positive_events``: which events count as positives).
            samples: ``[N]`` training Samples table (``query_id, user_idx, item_idx,
                timestamp, label_<task>...``), indices in ``data``'s vocabularies.
            log: the event log the training features read (``user_idx, item_idx, timestamp,
                event``); default ``data.interactions``.

        Returns:
            self.
        """
        log = data.interactions if log is None else log
        require_columns(samples, SAMPLE_COLUMNS, "samples")
        require_columns(log, LOG_COLUMNS, "log")
        if samples.height == 0:
            raise ValueError("samples: no rows to fit on")
        events = log["event"]
        n_imp = int((events == IMPRESSION).sum())
        n_ctr = int((events == self.config.ctr_event).sum())
        encoder = data.user_attr_encoder
        cats = data.item_categories
        created = data.item_created_at
        base = FittedState(
            item_category=(
                np.full(data.n_items, -1, dtype=np.int32) if cats is None else cats.copy()
            ),
            n_categories=len(data.category_vocab),
            n_users=data.n_users,
            user_attr=np.ascontiguousarray(data.user_attr, dtype=np.int32),
            attr_names=tuple(encoder.columns),
            attr_cardinalities=tuple(encoder.cardinalities),
            item_created_at=None if created is None else created.astype(np.int64),
            has_impressions=n_imp > 0,
            global_ctr=min(n_ctr / n_imp, 1.0) if n_imp else 0.0,
            tasks=tuple(c[len("label_") :] for c in samples.columns if c.startswith("label_")),
            positive_events=data.positive_events,
            dense_mean=np.zeros(0),
            dense_std=np.ones(0),
            evidence=evidence_columns(samples) if self.config.recall_evidence else (),
        )
        raw = assemble_dense(self.config, base, samples, log)
        mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0)
        self._fitted = dataclasses.replace(base, dense_mean=mean, dense_std=std)
        logger.info(
            "point-in-time features fitted on %d samples: %d sparse fields, %d dense",
            samples.height,
            self.spec.n_sparse,
            self.spec.n_dense,
        )
        return self

    @property
    def _state(self) -> FittedState:
        if self._fitted is None:
            raise RuntimeError("PointInTimeFeatures is not fitted: call fit() or from_state()")
        return self._fitted

    @property
    def positive_events(self) -> tuple[str, ...] | None:
        """The fitted positive rule (the training Dataset's ``positive_events``)."""
        return self._state.positive_events

    @property
    def spec(self) -> FeatureSpec:
        """The :class:`FeatureSpec` of the fitted features (made once per fitted state: every
        request reads it)."""
        cached = self._spec
        if cached is not None and cached[0] is self._fitted:
            return cached[1]
        spec = self._make_spec()
        self._spec = (self._state, spec)
        return spec

    def _make_spec(self) -> FeatureSpec:
        f = self._state
        sparse_names = ("user", "item", "category", *f.attr_names, "hour", "weekday")
        cards = (f.n_users + 1, f.n_items + 1, f.n_categories + 1, *f.attr_cardinalities, 25, 8)
        return FeatureSpec(
            sparse_names=sparse_names,
            sparse_cardinalities=cards,
            n_dense=len(self.dense_names),
            seq_len=self.config.seq_len,
            item_field=1,
            category_field=2,
            tasks=f.tasks,
            dense_names=self.dense_names,
        )

    def request_shared(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The sparse fields and dense features that describe only the user or the request's
        time (the same in every row of one served request): the user, the user's attributes,
        hour and weekday, and the ``u_*`` statistics. The ranker's request-shared form
        (:mod:`funnelrec.rank.lean_shared`) computes their part once per request."""
        f = self._state
        dense = tuple(n for n in self.dense_names if n.startswith(USER_SIDE_PREFIX))
        return ("user", *f.attr_names, "hour", "weekday"), dense

    @property
    def dense_names(self) -> tuple[str, ...]:
        f = self._state
        names = dense_feature_names(
            self.config, impressions=f.has_impressions, created_at=f.item_created_at is not None
        )
        return names + f.evidence

    def transform(self, samples: pl.DataFrame, log: pl.DataFrame | PreparedLog) -> RankFeatures:
        """Features of ``samples`` from the events of ``log`` strictly before each sample.

        Args:
            samples: ``[N]`` Samples table; label columns optional (none at serving time), but
                when present they must be the fitted tasks'. Rows keep their order.
            log: ``[E]`` events (``user_idx, item_idx, timestamp, event``), indices in the
                fitted vocabularies; ids new since fitting may carry indices >= the fitted
                sizes (see ``funnelrec.rank.samples.index_log``): they get sparse id 0 but
                their events still count. Events at or after a sample's time are never read.
                Or a :class:`PreparedLog` (same features, faster for small requests).

        Returns:
            :class:`RankFeatures` with ``sparse [N, F]`` int64, ``dense [N, D]`` float32,
            ``sequences`` (the windows of ``seq_item``/``seq_category [N, L]`` int64,
            ``seq_gap [N, L]`` float32, gathered per batch),
            ``labels {task: [N]}``, ``group [N]`` (query_id), ``user_idx [N]`` and ``extra``
            (``item_idx``, ``timestamp`` and position/source_rank/recall_score if present).

        Raises:
            ValueError: a missing column, or label columns that differ from the fitted tasks.
        """
        f = self._state
        require_columns(samples, SAMPLE_COLUMNS, "samples")
        columns = samples.columns
        present = [t for t in f.tasks if f"label_{t}" in columns]
        if present and len(present) != len(f.tasks):
            missing = [f"label_{t}" for t in f.tasks if t not in present]
            raise ValueError(f"samples: missing column '{missing[0]}' (fitted tasks {f.tasks})")
        raw, sparse, behaviours = self._computed(samples, log)
        extra: dict[str, NDArray] = {
            "item_idx": samples.get_column("item_idx").to_numpy().astype(np.int64),
            "timestamp": samples.get_column("timestamp").to_numpy().astype(np.int64),
        }
        for col in EXTRA_COLUMNS:
            if col in columns and samples.get_column(col).dtype.is_numeric():
                extra[col] = samples.get_column(col).to_numpy()
        return RankFeatures(
            spec=self.spec,
            sparse=sparse,
            dense=self._standardised(raw),
            sequences=behaviours,
            labels={
                t: samples.get_column(f"label_{t}").to_numpy().astype(np.float32, copy=False)
                for t in present
            },
            group=samples.get_column("query_id").to_numpy().astype(np.int64),
            user_idx=samples.get_column("user_idx").to_numpy().astype(np.int64),
            extra=extra,
        )

    def _computed(
        self, samples: pl.DataFrame, log: pl.DataFrame | PreparedLog
    ) -> tuple[NDArray[np.float64], NDArray[np.int64], SequenceBlock]:
        """Raw dense ``[N, D]``, sparse ``[N, F]`` and the sequences of ``samples``: one
        user's candidates after the whole of a prepared log (a served request) by the one-query
        path, everything else by the general one (the same numbers)."""
        f = self._state
        if isinstance(log, PreparedLog):
            query = OneQuery.of(samples, log, self.config, f)
            if query is not None:
                rules = self._rules
                return (
                    one_query_dense(self.config, f, samples, query, log, rules),
                    one_query_sparse(f, query),
                    DeferredSequences(self.config, f, samples, log, rules),
                )
        events, prepared = self._readable_log(samples, log)
        behaviours = sequences(
            self.config, f, samples, events, None if prepared is None else prepared.t0
        )
        raw = assemble_dense(self.config, f, samples, events, prepared)
        return raw, self._sparse(samples), behaviours

    def _standardised(self, raw: NDArray[np.float64]) -> NDArray[np.float32]:
        """``raw`` standardised with the fitted mean and std, NaN as 0, clipped, as float32
        (in place: ``raw`` is the caller's scratch)."""
        f = self._state
        raw -= f.dense_mean
        raw /= f.dense_std
        clip = self.config.clip
        # Clipped first, then NaN -> 0: what nan_to_num then clip gives (an infinity ends at
        # the clip either way), in two ufunc calls (nan_to_num costs ~10 us on a request).
        np.clip(raw, -clip, clip, out=raw)
        np.copyto(raw, 0.0, where=np.isnan(raw))
        return raw.astype(np.float32)

    def prepare(self, log: pl.DataFrame) -> PreparedLog:
        """Index ``log`` once for many :meth:`transform` calls (see :class:`PreparedLog`)."""
        f = self._state
        return prepare_log(log, self._rules, impressions=f.has_impressions)

    def raw_dense(self, samples: pl.DataFrame, log: pl.DataFrame) -> NDArray[np.float64]:
        """``[N, D]`` dense features before standardisation (columns: :attr:`dense_names`).

        Counts are ``log1p(count)``, recency and age ``log1p(seconds)``, CTR and share raw.
        For inspection and tests; :meth:`transform` standardises these.
        """
        require_columns(samples, SAMPLE_COLUMNS, "samples")
        require_columns(log, LOG_COLUMNS, "log")
        return assemble_dense(self.config, self._state, samples, relevant_events(log, samples))

    # ------------------------------------------------------------------ internals
    @property
    def _rules(self) -> EventRules:
        """The event rules of the fitted features (positive rule, CTR event, sequence)."""
        return EventRules.of(self.config, self._state.positive_events)

    def _readable_log(
        self, samples: pl.DataFrame, log: pl.DataFrame | PreparedLog
    ) -> tuple[LogArrays, PreparedLog | None]:
        """The log rows ``samples`` can read, as arrays, and the prepared index when it applies.

        A :class:`PreparedLog` whose 32-bit time window does not cover the samples falls back
        to the plain path over its whole log; otherwise only the samples' users' rows are read
        (item-side lookups use the index). A plain log is cut to the samples' users and items.
        """
        prepared = log if isinstance(log, PreparedLog) else None
        if prepared is not None and not prepared.covers(samples):
            log = prepared.combined()
            prepared = None
        if isinstance(log, PreparedLog):
            users = samples["user_idx"].to_numpy().astype(np.int64)
            return log.user_arrays(users, self._rules), prepared
        require_columns(log, LOG_COLUMNS, "log")
        return LogArrays.of(relevant_events(log, samples), self._rules), None

    def _sparse(self, samples: pl.DataFrame) -> NDArray[np.int64]:
        """``[N, F]`` sparse ids: user, item, category, user attributes, hour, weekday."""
        f = self._state
        user = samples["user_idx"].to_numpy().astype(np.int64)
        item = samples["item_idx"].to_numpy().astype(np.int64)
        ts = samples["timestamp"].to_numpy().astype(np.int64)
        known_u = (user >= 0) & (user < f.n_users)
        known_i = (item >= 0) & (item < f.n_items)
        attrs = np.zeros((user.shape[0], len(f.attr_names)), dtype=np.int64)
        attrs[known_u] = f.user_attr[user[known_u]]
        return np.column_stack(
            [
                np.where(known_u, user + 1, 0),
                np.where(known_i, item + 1, 0),
                f.category_of(item) + 1,
                attrs,
                (ts // 3600) % 24 + 1,
                (ts // DAY_S + 3) % 7 + 1,  # 1970-01-01 was a Thursday; Monday -> 1
            ]
        ).astype(np.int64)

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, NDArray]:
        """Fitted state as plain arrays (``np.savez``-able, loadable without pickle)."""
        out = self._state.to_arrays()
        out["dense_names"] = np.array(self.dense_names, dtype=np.str_)
        return out

    @classmethod
    def from_state(cls, config: PointInTimeConfig, state: dict[str, NDArray]) -> Self:
        """Rebuild a fitted featurizer from :meth:`state` (output identical to the original).

        A state saved before the positive rule was stored means the default rule (every event
        but impression), which is what such featurizers used.

        Raises:
            ValueError: the state does not match ``config`` (different dense features).
        """
        model = cls(config)
        model._fitted = FittedState.from_arrays(state)
        saved = tuple(str(n) for n in state["dense_names"])
        if saved != model.dense_names:
            raise ValueError(
                f"state holds dense features {saved}, the config gives {model.dense_names}"
            )
        return model

"""Point-in-time ranking features: every value computed only from events strictly before the
sample's own timestamp.

:class:`PointInTimeFeatures` turns a Samples table (``funnelrec.rank.samples``) and an event
log into :class:`~funnelrec.features.spec.RankFeatures`:

* **sparse** ``[N, F]``: user, item, the item's category, the user's attributes (age bucket,
  gender, region, occupation where the users table has them), hour of day and weekday (UTC) of
  the sample. Ids are the fitted dense index + 1; 0 = unknown (a user/item outside the fitted
  vocabulary, a missing category or attribute).
* **dense** ``[N, D]`` (standardised with the training samples' mean/std, clipped, finite):

  - user: positives per window and all time, recency ``log1p(s since last positive)``, and
    with impressions, impressions and smoothed CTR;
  - item: the same, plus age ``log1p(t - created_at)`` when items have ``created_at``;
  - user x target category: positives per window and all time, share of the user's positives;
  - user x target item: earlier positives (and impressions) of this very pair.

  Counts enter as ``log1p(count)``.
* **sequence** ``[N, L]``: the user's last L positive items (known items only), their
  categories and ``log1p`` gaps to the sample time, most recent first, 0 = padding.

Leakage guarantee: each lookup stops at the first event with ``timestamp >= t_sample`` (see
:mod:`funnelrec.features.sequence`), so adding any event at or after a sample's time, however
related to it, leaves that sample's features bit-identical. Fitted state (vocabulary sizes,
category/attribute/created_at tables, global CTR, standardisation) comes from the training data
only and is stored as plain arrays (:meth:`PointInTimeFeatures.state`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from funnelrec.data.dataset import NON_POSITIVE_EVENTS, Dataset
from funnelrec.features.sequence import TIME_MASK, KeyedEvents, Query, RowIndex, dense_keys
from funnelrec.features.spec import FeatureSpec, RankFeatures

logger = logging.getLogger(__name__)

DAY_S = 86400
IMPRESSION = "impression"
SAMPLE_COLUMNS = ("query_id", "user_idx", "item_idx", "timestamp")
LOG_COLUMNS = ("user_idx", "item_idx", "timestamp", "event")
EXTRA_COLUMNS = ("position", "source_rank", "recall_score")
"""Numeric sample columns carried into ``RankFeatures.extra`` when present (not features)."""
_SEQ_CHUNK = 1 << 18


class PointInTimeConfig(BaseModel):
    """Point-in-time feature settings.

    Example:
        >>> PointInTimeConfig(windows_s=(3600, 86400)).seq_len
        50
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["point_in_time"] = "point_in_time"
    windows_s: tuple[int, ...] = Field(
        (DAY_S, 7 * DAY_S, 30 * DAY_S), description="Count windows [t - w, t), seconds."
    )
    seq_len: int = Field(50, ge=1, description="L, behaviours in the sequence features.")
    positive_events: tuple[str, ...] | None = Field(
        None, description="Events counted as positives; None = every non-impression event."
    )
    seq_events: tuple[str, ...] | None = Field(
        None, description="Events in the behaviour sequence; None = the positive events."
    )
    ctr_event: str = Field("click", description="The event whose rate over impressions is CTR.")
    ctr_prior: float = Field(
        20.0, ge=0, description="Pseudo-impressions at the global CTR smoothing each CTR."
    )
    recency_cap_s: int = Field(
        365 * DAY_S, gt=0, description="Recency is capped here; also the value with no event."
    )
    clip: float = Field(10.0, gt=0, description="Standardised dense values are clipped to +-clip.")

    @field_validator("windows_s")
    @classmethod
    def _positive_windows(cls, windows: tuple[int, ...]) -> tuple[int, ...]:
        if any(w <= 0 for w in windows) or len(set(windows)) != len(windows):
            raise ValueError(f"windows_s must be distinct and positive, got {windows}")
        return windows


def _window_name(w: int) -> str:
    if w % DAY_S == 0:
        return f"{w // DAY_S}d"
    if w % 3600 == 0:
        return f"{w // 3600}h"
    return f"{w}s"


def dense_feature_names(
    config: PointInTimeConfig, *, impressions: bool, created_at: bool
) -> tuple[str, ...]:
    """Names of the dense features, in column order.

    Example:
        >>> cfg = PointInTimeConfig(windows_s=(86400,))
        >>> dense_feature_names(cfg, impressions=False, created_at=False)[:3]
        ('u_pos_1d', 'u_pos_all', 'u_recency')
    """
    win = [_window_name(w) for w in config.windows_s]
    names: list[str] = []
    for side in ("u", "i"):
        names += [f"{side}_pos_{w}" for w in win] + [f"{side}_pos_all", f"{side}_recency"]
        if impressions:
            names += [f"{side}_imp_all", f"{side}_ctr"]
    if created_at:
        names.append("i_age")
    names += [f"uc_pos_{w}" for w in win] + ["uc_pos_all", "uc_share", "ui_pos_all"]
    if impressions:
        names.append("ui_imp_all")
    return tuple(names)


@dataclass(frozen=True)
class _Fitted:
    item_category: NDArray[np.int32]  # [n_items], -1 = none
    n_categories: int
    n_users: int
    user_attr: NDArray[np.int32]  # [n_users, A], 0 = unknown
    attr_names: tuple[str, ...]
    attr_cardinalities: tuple[int, ...]
    item_created_at: NDArray[np.int64] | None  # [n_items], <= 0 = unknown
    has_impressions: bool
    global_ctr: float
    tasks: tuple[str, ...]
    dense_mean: NDArray[np.float64]  # [D]
    dense_std: NDArray[np.float64]  # [D]

    @property
    def n_items(self) -> int:
        return int(self.item_category.shape[0])


def _relevant_events(log: pl.DataFrame, samples: pl.DataFrame) -> pl.DataFrame:
    """The log rows any feature of ``samples`` can read: events of their users or of their
    items (user, user x category, user x item and sequence features read the user's rows; item
    features the item's). Exact, and it turns a single request over a million-row log from
    sorting the whole log into sorting a few thousand rows."""
    if log.height == 0 or samples.height == 0:
        return log
    s_user = samples["user_idx"].to_numpy().astype(np.int64)
    s_item = samples["item_idx"].to_numpy().astype(np.int64)
    l_user = log["user_idx"].to_numpy().astype(np.int64)
    l_item = log["item_idx"].to_numpy().astype(np.int64)
    keep = _marked(l_user, s_user) | _marked(l_item, s_item)
    if keep.all():
        return log
    return log.filter(pl.Series(keep))


def _marked(values: NDArray[np.int64], wanted: NDArray[np.int64]) -> NDArray[np.bool_]:
    """``values`` that occur in ``wanted`` (non-negative ids only), by a lookup table."""
    wanted = wanted[wanted >= 0]
    if wanted.size == 0:
        return np.zeros(values.shape[0], dtype=bool)
    size = int(max(wanted.max(), values.max(initial=0))) + 1
    table = np.zeros(size, dtype=bool)
    table[wanted] = True
    return np.where(values >= 0, table[np.maximum(values, 0)], False)


@dataclass(frozen=True)
class _MergedEvents:
    """Two :class:`KeyedEvents` of one kind read as one (a fixed log + events since)."""

    base: KeyedEvents
    extra: KeyedEvents

    def query(self, key: NDArray[np.int64], t: NDArray[np.int64]) -> tuple[Query, Query]:
        return self.base.query(key, t), self.extra.query(key, t)

    def count_before(self, q: tuple[Query, Query]) -> NDArray[np.int64]:
        return self.base.count_before(q[0]) + self.extra.count_before(q[1])

    def count_since(self, q: tuple[Query, Query], t_lo: NDArray[np.int64]) -> NDArray[np.int64]:
        return self.base.count_since(q[0], t_lo) + self.extra.count_since(q[1], t_lo)

    def last_time(self, q: tuple[Query, Query]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        t_base, has_base = self.base.last_time(q[0])
        t_extra, has_extra = self.extra.last_time(q[1])
        return np.maximum(t_base, t_extra), has_base | has_extra


@dataclass(frozen=True)
class PreparedLog:
    """An event log indexed once for many small :meth:`PointInTimeFeatures.transform` calls
    (serving): the item-side lookups over the whole log, sorted once, and the rows of each user.

    ``transform(samples, prepared.with_extra(events))`` computes exactly the features of
    ``transform(samples, pl.concat([log, events]))``: item-side features add the two logs'
    counts, and everything keyed by the user reads only the samples' users' rows of both. A
    request then costs lookups into the item index plus work on one user's rows, instead of
    sorting every event of every candidate item (tens of thousands of rows for popular ones).
    Made by :meth:`PointInTimeFeatures.prepare`.
    """

    log: pl.DataFrame
    t0: int
    t_max: int
    item_events: dict[str, KeyedEvents]
    user_rows: RowIndex
    extra: pl.DataFrame | None = None

    def with_extra(self, events: pl.DataFrame | None) -> PreparedLog:
        """The same index plus ``events`` (rows after the log, e.g. posted since training)."""
        if events is None or events.height == 0:
            return dataclasses.replace(self, extra=None)
        _require(events, LOG_COLUMNS, "events")
        return dataclasses.replace(self, extra=events.select(LOG_COLUMNS))

    def combined(self) -> pl.DataFrame:
        """The whole log followed by the extra events (what the index stands for)."""
        return self._append_extra(self.log.select(LOG_COLUMNS))

    def _append_extra(self, base: pl.DataFrame) -> pl.DataFrame:
        if self.extra is None:
            return base
        return pl.concat([base, self.extra.cast(dict(base.schema))])

    def rows_of_users(self, users: NDArray[np.int64]) -> pl.DataFrame:
        """The log rows of ``users`` then the extra events, each in their original order."""
        rows = np.sort(self.user_rows.rows(np.unique(users)))
        return self._append_extra(self.log[rows].select(LOG_COLUMNS))


def _require(df: pl.DataFrame, columns: tuple[str, ...], table: str) -> None:
    for col in columns:
        if col not in df.columns:
            raise ValueError(
                f"{table}: missing column '{col}' (found {', '.join(df.columns) or 'none'})"
            )


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
        self._fitted: _Fitted | None = None

    # ------------------------------------------------------------------ fit / transform
    def fit(self, data: Dataset, samples: pl.DataFrame, log: pl.DataFrame | None = None) -> Self:
        """Fit vocabulary sizes and the dense standardisation on training samples.

        Args:
            data: the training Dataset (vocabularies, items' categories and created_at, users'
                attributes).
            samples: ``[N]`` training Samples table (``query_id, user_idx, item_idx,
                timestamp, label_<task>...``), indices in ``data``'s vocabularies.
            log: the event log the training features read (``user_idx, item_idx, timestamp,
                event``); default ``data.interactions``.

        Returns:
            self.
        """
        log = data.interactions if log is None else log
        _require(samples, SAMPLE_COLUMNS, "samples")
        _require(log, LOG_COLUMNS, "log")
        if samples.height == 0:
            raise ValueError("samples: no rows to fit on")
        events = log["event"]
        n_imp = int((events == IMPRESSION).sum())
        n_ctr = int((events == self.config.ctr_event).sum())
        encoder = data.user_attr_encoder
        cats = data.item_categories
        created = data.item_created_at
        base = _Fitted(
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
            dense_mean=np.zeros(0),
            dense_std=np.ones(0),
        )
        raw = self._raw_dense(base, samples, log)
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
    def _state(self) -> _Fitted:
        if self._fitted is None:
            raise RuntimeError("PointInTimeFeatures is not fitted: call fit() or from_state()")
        return self._fitted

    @property
    def spec(self) -> FeatureSpec:
        """The :class:`FeatureSpec` of the fitted features."""
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

    @property
    def dense_names(self) -> tuple[str, ...]:
        f = self._state
        return dense_feature_names(
            self.config, impressions=f.has_impressions, created_at=f.item_created_at is not None
        )

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
            ``seq_item``/``seq_category [N, L]`` int64, ``seq_gap [N, L]`` float32,
            ``labels {task: [N]}``, ``group [N]`` (query_id), ``user_idx [N]`` and ``extra``
            (``item_idx``, ``timestamp`` and position/source_rank/recall_score if present).

        Raises:
            ValueError: a missing column, or label columns that differ from the fitted tasks.
        """
        f = self._state
        _require(samples, SAMPLE_COLUMNS, "samples")
        prepared = log if isinstance(log, PreparedLog) else None
        if prepared is not None and not self._fits_prepared(prepared, samples):
            log = prepared.combined()
            prepared = None
        if isinstance(log, PreparedLog):
            log = log.rows_of_users(samples["user_idx"].to_numpy().astype(np.int64))
        _require(log, LOG_COLUMNS, "log")
        present = [t for t in f.tasks if f"label_{t}" in samples.columns]
        if present and len(present) != len(f.tasks):
            missing = [f"label_{t}" for t in f.tasks if t not in present]
            raise ValueError(f"samples: missing column '{missing[0]}' (fitted tasks {f.tasks})")
        cfg = self.config
        user = samples["user_idx"].to_numpy().astype(np.int64)
        item = samples["item_idx"].to_numpy().astype(np.int64)
        ts = samples["timestamp"].to_numpy().astype(np.int64)

        if prepared is None:
            log = _relevant_events(log, samples)
        dense = (self._raw_dense(f, samples, log, prepared) - f.dense_mean) / f.dense_std
        dense = np.clip(np.nan_to_num(dense, nan=0.0), -cfg.clip, cfg.clip).astype(np.float32)

        known_u = (user >= 0) & (user < f.n_users)
        known_i = (item >= 0) & (item < f.n_items)
        cat = self._category(f, item)
        attrs = np.zeros((user.shape[0], len(f.attr_names)), dtype=np.int64)
        attrs[known_u] = f.user_attr[user[known_u]]
        sparse = np.column_stack(
            [
                np.where(known_u, user + 1, 0),
                np.where(known_i, item + 1, 0),
                cat + 1,
                attrs,
                (ts // 3600) % 24 + 1,
                (ts // DAY_S + 3) % 7 + 1,  # 1970-01-01 was a Thursday; Monday -> 1
            ]
        ).astype(np.int64)

        seq_item, seq_cat, seq_gap = self._sequences(
            f, samples, log, None if prepared is None else prepared.t0
        )
        extra: dict[str, NDArray] = {"item_idx": item, "timestamp": ts}
        for col in EXTRA_COLUMNS:
            if col in samples.columns and samples[col].dtype.is_numeric():
                extra[col] = samples[col].to_numpy()
        return RankFeatures(
            spec=self.spec,
            sparse=sparse,
            dense=dense,
            seq_item=seq_item,
            seq_category=seq_cat,
            seq_gap=seq_gap,
            labels={
                t: samples[f"label_{t}"].to_numpy().astype(np.float32, copy=False) for t in present
            },
            group=samples["query_id"].to_numpy().astype(np.int64),
            user_idx=user,
            extra=extra,
        )

    def prepare(self, log: pl.DataFrame) -> PreparedLog:
        """Index ``log`` once for many :meth:`transform` calls (see :class:`PreparedLog`)."""
        _require(log, LOG_COLUMNS, "log")
        log = log.select(LOG_COLUMNS)
        ts = log["timestamp"].to_numpy().astype(np.int64)
        t0 = int(ts.min()) if ts.size else 0
        t_max = int(ts.max()) if ts.size else 0
        if t_max - t0 > TIME_MASK:
            raise ValueError(f"log timestamps span {t_max - t0} s, more than the 2**32 s supported")
        l_t = ts - t0
        item = log["item_idx"].to_numpy().astype(np.int64)
        flags = self._flags(log)
        events = {"pos": KeyedEvents.build(item, l_t, flags["pos"])}
        if self._state.has_impressions:
            events["ctr"] = KeyedEvents.build(item, l_t, flags["ctr"])
            events["imp"] = KeyedEvents.build(item, l_t, flags["imp"])
        user_rows = RowIndex(log["user_idx"].to_numpy())
        return PreparedLog(log, t0, t_max, events, user_rows)

    @staticmethod
    def _fits_prepared(prepared: PreparedLog, samples: pl.DataFrame) -> bool:
        """Whether every time lies in the prepared index's 32-bit window from its t0 (else
        the caller falls back to the plain path, which picks its own reference time)."""
        times = [samples["timestamp"].to_numpy()]
        if prepared.extra is not None:
            times.append(prepared.extra["timestamp"].to_numpy())
        lo = min((int(t.min()) for t in times if t.size), default=prepared.t0)
        hi = max([prepared.t_max, *(int(t.max()) for t in times if t.size)])
        return lo >= prepared.t0 and hi - prepared.t0 <= TIME_MASK

    def _flags(self, log: pl.DataFrame) -> dict[str, NDArray[np.bool_]]:
        flags = log.select(
            self._positive_expr().alias("pos"),
            (pl.col("event") == IMPRESSION).alias("imp"),
            (pl.col("event") == self.config.ctr_event).alias("ctr"),
        )
        return {name: flags[name].to_numpy() for name in ("pos", "imp", "ctr")}

    def raw_dense(self, samples: pl.DataFrame, log: pl.DataFrame) -> NDArray[np.float64]:
        """``[N, D]`` dense features before standardisation (columns: :attr:`dense_names`).

        Counts are ``log1p(count)``, recency and age ``log1p(seconds)``, CTR and share raw.
        For inspection and tests; :meth:`transform` standardises these.
        """
        _require(samples, SAMPLE_COLUMNS, "samples")
        _require(log, LOG_COLUMNS, "log")
        return self._raw_dense(self._state, samples, _relevant_events(log, samples))

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _category(f: _Fitted, item: NDArray[np.int64]) -> NDArray[np.int64]:
        """``[N]`` fitted category index per item (-1: unknown item or no category)."""
        known = (item >= 0) & (item < f.n_items)
        out = np.full(item.shape[0], -1, dtype=np.int64)
        out[known] = f.item_category[item[known]]
        return out

    def _positive_expr(self) -> pl.Expr:
        events = self.config.positive_events
        if events is None:
            return ~pl.col("event").is_in(NON_POSITIVE_EVENTS)
        return pl.col("event").is_in(events)

    def _times(
        self, samples: pl.DataFrame, log: pl.DataFrame, t0: int | None = None
    ) -> tuple[int, NDArray[np.int64], NDArray[np.int64]]:
        """Reference time t0 (given, or the earliest time) and relative sample ``[N]`` and log
        ``[E]`` times (N > 0)."""
        s_ts = samples["timestamp"].to_numpy().astype(np.int64)
        l_ts = log["timestamp"].to_numpy().astype(np.int64)
        lo, hi = int(s_ts.min()), int(s_ts.max())
        if l_ts.size:
            lo, hi = min(lo, int(l_ts.min())), max(hi, int(l_ts.max()))
        t0 = lo if t0 is None else t0
        if hi - t0 > TIME_MASK:
            raise ValueError(f"timestamps span {hi - t0} s, more than the 2**32 s supported")
        return t0, s_ts - t0, l_ts - t0

    def _raw_dense(
        self,
        f: _Fitted,
        samples: pl.DataFrame,
        log: pl.DataFrame,
        prepared: PreparedLog | None = None,
    ) -> NDArray:
        """``[N, D]`` float64 unstandardised dense features (names: :attr:`dense_names`).

        With ``prepared``, ``log`` holds only the samples' users' rows (and the extra events)
        and item-side lookups read the prepared index plus the extra events."""
        cfg = self.config
        n = samples.height
        if n == 0:
            n_dense = len(
                dense_feature_names(
                    cfg, impressions=f.has_impressions, created_at=f.item_created_at is not None
                )
            )
            return np.zeros((0, n_dense))
        _, s_t, l_t = self._times(samples, log, None if prepared is None else prepared.t0)
        user = samples["user_idx"].to_numpy().astype(np.int64)
        item = samples["item_idx"].to_numpy().astype(np.int64)
        flags = self._flags(log)
        is_pos, is_imp, is_ctr = flags["pos"], flags["imp"], flags["ctr"]
        l_user = log["user_idx"].to_numpy().astype(np.int64)
        l_item = log["item_idx"].to_numpy().astype(np.int64)
        cap = float(cfg.recency_cap_s)
        cols: list[NDArray[np.float64]] = []

        def counts(ev: Any, q: Any, recency: bool) -> None:
            cols.extend(np.log1p(ev.count_since(q, s_t - w)) for w in cfg.windows_s)
            cols.append(np.log1p(ev.count_before(q)))
            if recency:
                last, has = ev.last_time(q)
                cols.append(np.log1p(np.where(has, np.minimum(s_t - last, cap), cap)))

        def rate(clicks: Any, imps: Any, key: NDArray[np.int64]) -> None:
            n_imp = imps.count_before(imps.query(key, s_t))
            n_click = clicks.count_before(clicks.query(key, s_t))
            cols.append(np.log1p(n_imp))
            prior = cfg.ctr_prior
            ctr = (n_click + prior * f.global_ctr) / np.maximum(n_imp + prior, 1e-9)
            cols.append(np.minimum(ctr, 1.0))

        def side_events(side: str, l_key: NDArray[np.int64], mask: NDArray, kind: str) -> Any:
            if side == "u" or prepared is None:
                return KeyedEvents.build(l_key, l_t, mask)
            if prepared.extra is None:
                return prepared.item_events[kind]
            extra = log.height - prepared.extra.height  # the extra events come last
            return _MergedEvents(
                prepared.item_events[kind],
                KeyedEvents.build(l_key[extra:], l_t[extra:], mask[extra:]),
            )

        side_totals = {}
        for side, s_key, l_key in (("u", user, l_user), ("i", item, l_item)):
            pos = side_events(side, l_key, is_pos, "pos")
            q = pos.query(s_key, s_t)
            side_totals[side] = pos.count_before(q)
            counts(pos, q, recency=True)
            if f.has_impressions:
                clicks = side_events(side, l_key, is_ctr, "ctr")
                rate(clicks, side_events(side, l_key, is_imp, "imp"), s_key)
        if f.item_created_at is not None:
            created = np.zeros(n, dtype=np.int64)
            known = (item >= 0) & (item < f.n_items)
            created[known] = f.item_created_at[item[known]]
            s_abs = samples["timestamp"].to_numpy().astype(np.int64)
            age = np.where(created > 0, np.maximum(s_abs - created, 0), 0)
            cols.append(np.log1p(age.astype(np.float64)))

        # user x target category
        s_cat = self._category(f, item)
        l_cat = self._category(f, l_item)
        s_rank, l_rank = dense_keys(
            (user << 32) | np.maximum(s_cat, 0),
            (l_user << 32) | np.maximum(l_cat, 0),
            (user >= 0) & (s_cat >= 0),
            is_pos & (l_user >= 0) & (l_cat >= 0),
        )
        uc = KeyedEvents.build(l_rank, l_t)
        q = uc.query(s_rank, s_t)
        counts(uc, q, recency=False)
        n_uc = uc.count_before(q)
        cols.append(np.where(side_totals["u"] > 0, n_uc / np.maximum(side_totals["u"], 1), 0.0))

        # user x target item
        valid_l = (l_user >= 0) & (l_item >= 0)
        s_rank, l_rank = dense_keys(
            (user << 32) | np.maximum(item, 0),
            (l_user << 32) | np.maximum(l_item, 0),
            (user >= 0) & (item >= 0),
            valid_l,
        )
        ui = KeyedEvents.build(l_rank, l_t, is_pos)
        cols.append(np.log1p(ui.count_before(ui.query(s_rank, s_t))))
        if f.has_impressions:
            ui_imp = KeyedEvents.build(l_rank, l_t, is_imp)
            cols.append(np.log1p(ui_imp.count_before(ui_imp.query(s_rank, s_t))))
        return np.column_stack(cols).astype(np.float64)

    def _sequences(
        self, f: _Fitted, samples: pl.DataFrame, log: pl.DataFrame, t0: int | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """``[N, L]`` last-L positive items, categories, log1p gaps (0 = padding)."""
        cfg = self.config
        n, length = samples.height, cfg.seq_len
        seq_item = np.zeros((n, length), dtype=np.int64)
        seq_cat = np.zeros((n, length), dtype=np.int64)
        seq_gap = np.zeros((n, length), dtype=np.float32)
        if n == 0:
            return seq_item, seq_cat, seq_gap
        _, s_t, l_t = self._times(samples, log, t0)
        events = cfg.seq_events if cfg.seq_events is not None else cfg.positive_events
        keep_expr = (
            ~pl.col("event").is_in(NON_POSITIVE_EVENTS)
            if events is None
            else pl.col("event").is_in(events)
        )
        keep = log.select(keep_expr)["event"].to_numpy()
        l_user = log["user_idx"].to_numpy().astype(np.int64)
        l_item = log["item_idx"].to_numpy().astype(np.int64)
        keep = keep & (l_item >= 0) & (l_item < f.n_items)  # 0 stays padding only
        ev = KeyedEvents.build(l_user, l_t, keep)
        # Pre-gather in (user, time) order: each sample's last events are then contiguous.
        item_sorted = l_item[ev.rows] + 1
        cat_sorted = self._category(f, l_item[ev.rows]) + 1
        t_sorted = l_t[ev.rows]
        user = samples["user_idx"].to_numpy().astype(np.int64)
        flat_item, flat_cat, flat_gap = seq_item.ravel(), seq_cat.ravel(), seq_gap.ravel()
        for lo in range(0, n, _SEQ_CHUNK):
            hi = min(lo + _SEQ_CHUNK, n)
            sample, slot, pos = ev.last_positions(ev.query(user[lo:hi], s_t[lo:hi]), length)
            at = (sample + lo) * length + slot
            flat_item[at] = item_sorted[pos]
            flat_cat[at] = cat_sorted[pos]
            flat_gap[at] = np.log1p((s_t[lo:hi][sample] - t_sorted[pos]).astype(np.float64))
        return seq_item, seq_cat, seq_gap

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, NDArray]:
        """Fitted state as plain arrays (``np.savez``-able, loadable without pickle)."""
        f = self._state
        out: dict[str, NDArray] = {
            "item_category": f.item_category,
            "n_categories": np.array(f.n_categories, dtype=np.int64),
            "n_users": np.array(f.n_users, dtype=np.int64),
            "user_attr": f.user_attr,
            "attr_names": np.array(f.attr_names, dtype=np.str_),
            "attr_cardinalities": np.array(f.attr_cardinalities, dtype=np.int64),
            "has_impressions": np.array(f.has_impressions),
            "global_ctr": np.array(f.global_ctr, dtype=np.float64),
            "tasks": np.array(f.tasks, dtype=np.str_),
            "dense_names": np.array(self.dense_names, dtype=np.str_),
            "dense_mean": f.dense_mean,
            "dense_std": f.dense_std,
        }
        if f.item_created_at is not None:
            out["item_created_at"] = f.item_created_at
        return out

    @classmethod
    def from_state(cls, config: PointInTimeConfig, state: dict[str, NDArray]) -> Self:
        """Rebuild a fitted featurizer from :meth:`state` (output identical to the original).

        Raises:
            ValueError: the state does not match ``config`` (different dense features).
        """
        model = cls(config)
        model._fitted = _Fitted(
            item_category=np.asarray(state["item_category"], dtype=np.int32),
            n_categories=int(state["n_categories"]),
            n_users=int(state["n_users"]),
            user_attr=np.asarray(state["user_attr"], dtype=np.int32),
            attr_names=tuple(str(a) for a in state["attr_names"]),
            attr_cardinalities=tuple(int(c) for c in state["attr_cardinalities"]),
            item_created_at=(
                np.asarray(state["item_created_at"], dtype=np.int64)
                if "item_created_at" in state
                else None
            ),
            has_impressions=bool(state["has_impressions"]),
            global_ctr=float(state["global_ctr"]),
            tasks=tuple(str(t) for t in state["tasks"]),
            dense_mean=np.asarray(state["dense_mean"], dtype=np.float64),
            dense_std=np.asarray(state["dense_std"], dtype=np.float64),
        )
        saved = tuple(str(n) for n in state["dense_names"])
        if saved != model.dense_names:
            raise ValueError(
                f"state holds dense features {saved}, the config gives {model.dense_names}"
            )
        return model

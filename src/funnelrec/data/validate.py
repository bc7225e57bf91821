"""Validate and cast a raw frame to the canonical table its spec declares.

:func:`coerce_table` is the one place the table rules live; :func:`funnelrec.data.io.read_table`
and every converter call it, so every source gets the same treatment:

* each column is parsed by its spec kind (:mod:`funnelrec.data.parse`); ``timestamp`` and
  ``created_at`` are unix-second timestamps wherever they appear; ``value`` is ``Float32``,
  ``event`` ``String``, ``position`` ``Int64``;
* interactions: a missing ``event`` column defaults to ``"click"`` and a missing ``value``
  column to ``1.0``; null cells in present columns get the same defaults, counted in
  :attr:`DropReport.filled`;
* rows that are unusable but not malformed (a null id or timestamp, an empty row) are dropped
  and counted per reason in a :class:`DropReport`, never lost silently;
* a table with a key (items: ``item_id``, users: ``user_id``) keeps the first row of each key;
  later rows repeating it are dropped, counted and warned about;
* interactions: rows whose timestamp lies far outside the bulk of the time distribution (a
  ``0`` or a year-3000 typo among years of real events) are dropped, counted and warned about
  (:func:`outlier_time_bounds` states the rule); one such row would otherwise stretch the time
  span that the temporal split and the time features are built on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from funnelrec.data.parse import (
    RowOf,
    infer_column,
    parse_float,
    parse_id,
    parse_int,
    parse_timestamp,
)
from funnelrec.errors import DataError, quoted
from funnelrec.schema import TableSpec

logger = logging.getLogger(__name__)

TIME_COLUMNS: tuple[str, ...] = ("timestamp", "created_at")
"""Columns parsed as unix-second timestamps wherever they appear."""

DEFAULTS: Mapping[str, Mapping[str, str | float]] = {
    "interactions": {"event": "click", "value": 1.0},
}
"""Per table: column -> value used when the column is absent or a cell is null."""

_DEFAULT_DTYPES: Mapping[str, pl.DataType] = {"event": pl.String(), "value": pl.Float32()}

OUTLIER_QUANTILE = 0.01
OUTLIER_SLACK = 3.0
"""Interaction times more than ``OUTLIER_SLACK`` times the ``[q, 1 - q]`` quantile range
beyond either quantile are outliers (see :func:`outlier_time_bounds`)."""


@dataclass(frozen=True, slots=True)
class DropReport:
    """What happened to the records of one source file.

    Attributes:
        table: canonical table the file feeds (``interactions``, ``items``, ``users``).
        path: the source file.
        n_read: records read (data lines; the header is not counted).
        n_kept: records kept.
        dropped: reason -> records dropped, e.g. ``{"null timestamp": 1}``. A record with
            several problems is counted once, under the first reason (empty row, then the key
            columns in schema order). Only non-zero reasons are listed.
        filled: column -> null cells replaced by the documented default.
    """

    table: str
    path: str
    n_read: int
    n_kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        """Records dropped, all reasons together."""
        return self.n_read - self.n_kept


def coerce_table(
    raw: pl.DataFrame,
    spec: TableSpec,
    *,
    path: str,
    row_of: RowOf | None = None,
    header_row: int | None = None,
    defaults: Mapping[str, str | float] | None = None,
    source_names: Mapping[str, str] | None = None,
) -> tuple[pl.DataFrame, DropReport]:
    """Validate and cast a raw frame (text or typed columns) to the table ``spec`` declares.

    Converters call this on frames they assembled, so every source gets the same rules.

    Args:
        raw: ``[n_rows, n_cols]`` frame; string columns are parsed, typed ones checked.
        spec: the declared table; its required columns must be present, except defaulted ones.
        path: the source file, named in errors and in the report.
        row_of: frame index -> row number named in errors (default: index + 1).
        header_row: row named for a missing column (1 for a file with a header line).
        defaults: column -> default for absent columns and null cells; None uses
            :data:`DEFAULTS` for ``spec.name``.
        source_names: canonical column -> its name in the source file, used in errors
            (e.g. ``{"item_id": "movieId"}``).

    Returns:
        The table (spec columns first, extras after) with rows of null key columns dropped,
        and the :class:`DropReport` (table = ``spec.name``).

    Raises:
        DataError: a required column is missing, a value cannot be parsed, or no row is left.
    """
    row_of = row_of if row_of is not None else (lambda i: i + 1)
    defaults = DEFAULTS.get(spec.name, {}) if defaults is None else defaults
    n = raw.height
    if n == 0:
        raise DataError("no rows", path=path)
    _check_required(raw, spec, defaults, path=path, header_row=header_row)
    spec_kinds = {c.name: c.kind for c in spec.columns}
    cols: dict[str, pl.Series] = {}
    for name in raw.columns:
        shown = raw[name].alias(source_names.get(name, name)) if source_names else raw[name]
        parsed = _coerce_column(shown, name, spec_kinds.get(name), path=path, row_of=row_of)
        cols[name] = parsed.alias(name)
    filled = _fill_defaults(cols, defaults, n)
    order = [c.name for c in spec.columns if c.name in cols]
    order += [c for c in raw.columns if c not in order]
    df = pl.DataFrame([cols[c] for c in order])

    # An empty row is judged on the raw frame: defaults have filled its cells by now.
    empty = raw.select(pl.all_horizontal(pl.all().is_null())).to_series()
    keys = [c.name for c in spec.columns if c.required and c.name not in defaults]
    gone, dropped = _unusable_rows(df, keys, empty)
    if spec.key is not None and spec.key in df.columns:
        gone = _drop_repeated_keys(df, spec.key, gone, dropped, path=path, row_of=row_of)
    if spec.name == "interactions" and "timestamp" in df.columns:
        gone = _drop_outlier_times(df, gone, dropped, path=path, row_of=row_of)
    report = DropReport(spec.name, path, n, n - int(gone.sum()), dropped, filled)
    if report.n_kept == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in dropped.items())
        raise DataError(f"no usable rows: all {n} dropped ({reasons})", path=path)
    if dropped:
        df = df.filter(~gone)
        logger.info("%s: dropped %d of %d rows (%s)", path, report.n_dropped, n, dropped)
    if filled:
        logger.info("%s: filled null cells with defaults %s", path, filled)
    return df, report


def _check_required(
    raw: pl.DataFrame,
    spec: TableSpec,
    defaults: Mapping[str, str | float],
    *,
    path: str,
    header_row: int | None,
) -> None:
    """Raise for the first required column that is neither present nor defaulted."""
    found = ", ".join(raw.columns) or "none"
    needed = ", ".join(c for c in spec.required if c not in defaults)
    for col in spec.columns:
        if col.required and col.name not in raw.columns and col.name not in defaults:
            raise DataError(
                f"missing required column (the {spec.name} table needs {needed}; found {found})",
                path=path,
                row=header_row,
                column=col.name,
            )


def _fill_defaults(
    cols: dict[str, pl.Series], defaults: Mapping[str, str | float], n: int
) -> dict[str, int]:
    """Add absent defaulted columns and fill null cells of present ones, in place.

    Args:
        cols: column name -> parsed ``[n]`` series; updated in place.
        defaults: column -> default value.
        n: rows in the table.

    Returns:
        Column -> null cells filled (present columns with at least one null only).
    """
    filled: dict[str, int] = {}
    for name, default in defaults.items():
        dtype = _DEFAULT_DTYPES.get(name, pl.String())
        if name not in cols:
            cols[name] = pl.repeat(default, n, dtype=dtype, eager=True).alias(name)
            continue
        n_null = cols[name].null_count()
        if n_null:
            cols[name] = cols[name].fill_null(pl.lit(default, dtype=dtype))
            filled[name] = n_null
    return filled


def _unusable_rows(
    df: pl.DataFrame, keys: list[str], empty: pl.Series
) -> tuple[pl.Series, dict[str, int]]:
    """Rows to drop and the count per reason, each row under its first reason only.

    Args:
        df: ``[n]`` the parsed table.
        keys: required key columns, in schema order (a null there makes a row unusable).
        empty: ``[n]`` bool, rows whose raw cells were all null.

    Returns:
        ``[n]`` bool mask of rows to drop and reason -> count (non-zero reasons only).
    """
    gone = empty
    dropped: dict[str, int] = {}
    if empty.any():
        dropped["empty row"] = int(empty.sum())
    for key in keys:
        mask = df[key].is_null() & ~gone
        count = int(mask.sum())
        if count:
            dropped[f"null {key}"] = count
            gone = gone | mask
    return gone, dropped


def _drop_repeated_keys(
    df: pl.DataFrame,
    key: str,
    gone: pl.Series,
    dropped: dict[str, int],
    *,
    path: str,
    row_of: RowOf,
) -> pl.Series:
    """Mark rows repeating an earlier row's ``key`` (the first row of each key stays): a
    catalogue with two rows for one item has no single answer to "what is this item"."""
    repeated = ~df[key].is_first_distinct() & ~gone
    count = int(repeated.sum())
    if not count:
        return gone
    i = int(repeated.arg_max() or 0)
    dropped[f"repeated {key}"] = count
    logger.warning(
        "%s: %d row(s) repeat an earlier %s (first at row %d: %s); kept the first row of each",
        path,
        count,
        key,
        row_of(i),
        quoted(df[key][i]),
    )
    return gone | repeated


def outlier_time_bounds(timestamps: pl.Series) -> tuple[int, int] | None:
    """The range of usable interaction times: ``[q_lo - s w, q_hi + s w]`` where ``q_lo``,
    ``q_hi`` are the :data:`OUTLIER_QUANTILE` and ``1 -`` that quantiles, ``w = q_hi - q_lo``
    and ``s`` is :data:`OUTLIER_SLACK`.

    Quantiles, not the minimum and maximum, so that a few bad rows cannot move the bounds; three
    whole central ranges of slack on each side, so that a log that grew over the years (or one
    whose last weeks hold most rows) keeps its sparse early and late events: only times far
    from any plausible span (a 0, a -5, a year-3000 typo) go. None when nothing can be
    judged: under ~100 rows the quantiles are the extremes themselves, and a zero range means
    no spread to measure.

    Example:
        >>> ts = pl.Series(list(range(1_000, 1_200)) + [0, 5_000_000])
        >>> outlier_time_bounds(ts)
        (410, 1789)
    """
    lo_q = timestamps.quantile(OUTLIER_QUANTILE, "nearest")
    hi_q = timestamps.quantile(1.0 - OUTLIER_QUANTILE, "nearest")
    if lo_q is None or hi_q is None or hi_q <= lo_q:
        return None
    slack = OUTLIER_SLACK * (hi_q - lo_q)
    return int(lo_q - slack), int(hi_q + slack)


def _when(t: int) -> str:
    """Unix seconds with their UTC date, for messages (raw seconds when not a calendar date)."""
    try:
        return f"{t} ({datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M})"
    except (OverflowError, OSError, ValueError):
        return str(t)


def _drop_outlier_times(
    df: pl.DataFrame, gone: pl.Series, dropped: dict[str, int], *, path: str, row_of: RowOf
) -> pl.Series:
    """Mark interactions outside :func:`outlier_time_bounds` of the kept rows' times."""
    ts = df["timestamp"]
    bounds = outlier_time_bounds(ts.filter(~gone & ts.is_not_null()))
    if bounds is None:
        return gone
    outside = ~ts.is_between(*bounds).fill_null(True) & ~gone
    count = int(outside.sum())
    if not count:
        return gone
    i = int(outside.arg_max() or 0)
    dropped["outlier timestamp"] = count
    logger.warning(
        "%s: dropped %d row(s) with outlier timestamps outside %s .. %s (more than %g times "
        "the %g-%g%% quantile range beyond those quantiles); first at row %d: %s",
        path,
        count,
        _when(bounds[0]),
        _when(bounds[1]),
        OUTLIER_SLACK,
        OUTLIER_QUANTILE * 100,
        (1 - OUTLIER_QUANTILE) * 100,
        row_of(i),
        ts[i],
    )
    return gone | outside


def _coerce_column(
    s: pl.Series, name: str, kind: str | None, *, path: str, row_of: RowOf
) -> pl.Series:
    """Parse column ``name`` (``s`` carries the name shown in errors) by its spec kind."""
    if name in TIME_COLUMNS and kind in ("int", "any", None):
        return parse_timestamp(s, path=path, row_of=row_of)
    if kind == "id":
        return parse_id(s, path=path, row_of=row_of)
    if kind == "int":
        return parse_int(s, path=path, row_of=row_of)
    if kind == "float":
        dtype = pl.Float32() if name == "value" else pl.Float64()
        return parse_float(s, path=path, row_of=row_of).cast(dtype)
    if kind == "str":
        return s.cast(pl.String) if s.dtype != pl.String else s
    return infer_column(s)

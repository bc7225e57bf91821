"""Parse one column of a canonical table: ids, integers, numbers, timestamps, attributes.

Every parser takes the column as read (text from CSV/TSV, typed from Parquet) and either returns
the typed column or raises a :class:`~funnelrec.errors.DataError` naming the first offending row
(through ``row_of``) and the column. Rules:

* ids: ``Int64`` when every value is an integer (``"1.0"`` counts), otherwise ``String``; an
  all-numeric column holding a fractional value such as ``1.5`` is an error.
* timestamps: ``Int64`` unix seconds from integers, floats (truncated toward zero) and ISO-8601
  dates/datetimes (``2020-01-02``, ``2020-01-02T03:04:05.123+01:00``, ``... Z``), naive ones
  read as UTC.
* :data:`NULL_TOKENS` and empty cells are nulls in every parsed (non-text) column.
* attribute columns of no declared kind (:func:`infer_column`): integers become ``Int64``
  (unless some value has a leading zero, as zip codes do), other numbers ``Float64``, the rest
  stays text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import polars as pl

from funnelrec.errors import DataError, quoted

logger = logging.getLogger(__name__)

NULL_TOKENS: tuple[str, ...] = ("", "nan", "NaN", "NAN", "null", "NULL", "None", "NA", "N/A")
"""Cell texts read as null in parsed (id, number, timestamp) columns."""

_DATE_FORMAT = "%Y-%m-%d"
_ISO_FORMATS: tuple[str, ...] = tuple(
    f"%Y-%m-%d{sep}{time}"
    for sep in ("T", " ")
    for time in ("%H:%M:%S%.f", "%H:%M:%S%.f%#z", "%H:%M", "%H:%M%#z")
)

RowOf = Callable[[int], int]
"""Maps a 0-based frame index to the row number named in errors."""


def _clean(s: pl.Series) -> pl.Series:
    """Strip whitespace and turn :data:`NULL_TOKENS` into nulls (String in, String out)."""
    x = pl.col(s.name)
    stripped = x.str.strip_chars()
    return (
        s.to_frame()
        .select(pl.when(stripped.is_in(NULL_TOKENS)).then(None).otherwise(stripped).alias(s.name))
        .to_series()
    )


def _fail(message: str, raw: pl.Series, mask: pl.Series, *, path: str, row_of: RowOf) -> DataError:
    """A DataError at the first row where ``mask`` is true, quoting the offending value."""
    i = int(mask.fill_null(False).arg_max() or 0)
    return DataError(
        f"{message}, found {quoted(raw[i])}", path=path, row=row_of(i), column=raw.name
    )


def _not_integral(f: pl.Series) -> pl.Series:
    return f.is_not_null() & (~f.is_finite() | (f != f.floor()) | (f.abs() > 2.0**63))


def parse_id(s: pl.Series, *, path: str, row_of: RowOf) -> pl.Series:
    """Parse an id column: ``Int64`` when all values are integers, else ``String``.

    Args:
        s: ``[n]`` text or numeric ids.
        path: source file named in errors.
        row_of: frame index -> row number named in errors.

    Returns:
        ``[n]`` ``Int64`` or ``String`` series, nulls kept.

    Raises:
        DataError: all values are numbers and one is fractional (``1.5``) or infinite, or
            the column is of another type (dates, booleans).
    """
    if s.dtype.is_integer():
        return s.cast(pl.Int64)
    if s.dtype.is_float():
        f = s.fill_nan(None)
        bad = _not_integral(f)
        if bad.any():
            raise _fail("ids must be integers or strings", s, bad, path=path, row_of=row_of)
        return f.cast(pl.Int64)
    if s.dtype == pl.Categorical:
        s = s.cast(pl.String)
    if s.dtype != pl.String:
        raise DataError(
            f"expected integer or string ids, found {s.dtype}", path=path, column=s.name
        )
    fast = s.cast(pl.Int64, strict=False)
    if fast.null_count() == s.null_count():
        return fast
    c = _clean(s)
    as_int = c.cast(pl.Int64, strict=False)
    not_int = c.is_not_null() & as_int.is_null()
    if not not_int.any():
        return as_int
    as_float = c.cast(pl.Float64, strict=False)
    numeric = as_float.is_not_null() & as_float.is_finite()
    if (not_int & ~numeric).any():
        if (c.is_not_null() & ~not_int).any():
            i = int(not_int.arg_max() or 0)
            logger.warning(
                "%s: column '%s' mixes integer and text ids (first text id %s at row %d); "
                "reading all as text",
                path,
                s.name,
                quoted(c[i]),
                row_of(i),
            )
        return c
    bad = not_int & _not_integral(as_float)
    if bad.any():
        raise _fail("ids must be integers or strings", s, bad, path=path, row_of=row_of)
    return as_int.fill_null(as_float.cast(pl.Int64, strict=False))


def parse_int(s: pl.Series, *, path: str, row_of: RowOf) -> pl.Series:
    """Parse an integer column (``"3"``, ``"3.0"``) to ``Int64``; anything else is an error."""
    if s.dtype.is_integer() or s.dtype == pl.Boolean:
        return s.cast(pl.Int64)
    if s.dtype.is_float():
        f = s.fill_nan(None)
        bad = _not_integral(f)
        if bad.any():
            raise _fail("expected an integer", s, bad, path=path, row_of=row_of)
        return f.cast(pl.Int64)
    if s.dtype not in (pl.String, pl.Categorical):
        raise DataError(f"expected an integer, found {s.dtype}", path=path, column=s.name)
    s = s.cast(pl.String)
    fast = s.cast(pl.Int64, strict=False)
    if fast.null_count() == s.null_count():
        return fast
    c = _clean(s)
    as_int = c.cast(pl.Int64, strict=False)
    todo = c.is_not_null() & as_int.is_null()
    if not todo.any():
        return as_int
    as_float = c.cast(pl.Float64, strict=False)
    bad = todo & (as_float.is_null() | _not_integral(as_float))
    if bad.any():
        raise _fail("expected an integer", s, bad, path=path, row_of=row_of)
    return as_int.fill_null(as_float.cast(pl.Int64, strict=False))


def parse_float(s: pl.Series, *, path: str, row_of: RowOf) -> pl.Series:
    """Parse a numeric column to ``Float64``; NaN becomes null, infinities are errors."""
    if s.dtype.is_numeric() or s.dtype == pl.Boolean:
        f = s.cast(pl.Float64)
    elif s.dtype in (pl.String, pl.Categorical):
        s = s.cast(pl.String)
        f = s.cast(pl.Float64, strict=False)
        if f.null_count() != s.null_count():
            c = _clean(s)
            f = c.cast(pl.Float64, strict=False)
            bad = c.is_not_null() & f.is_null()
            if bad.any():
                raise _fail("expected a number", s, bad, path=path, row_of=row_of)
    else:
        raise DataError(f"expected a number, found {s.dtype}", path=path, column=s.name)
    f = f.fill_nan(None)
    bad = f.is_infinite()
    if bad.any():
        raise _fail("expected a finite number", s, bad, path=path, row_of=row_of)
    return f


def parse_timestamp(s: pl.Series, *, path: str, row_of: RowOf) -> pl.Series:
    """Parse timestamps to ``Int64`` unix seconds.

    Accepts integers, floats (truncated toward zero) and ISO-8601 dates or datetimes, with or
    without fractional seconds and a ``Z``/``+hh:mm`` offset; naive values are read as UTC.
    Parquet ``Date``/``Datetime`` columns are converted likewise.

    Args:
        s: ``[n]`` text, numeric or temporal values.
        path: source file named in errors.
        row_of: frame index -> row number named in errors.

    Returns:
        ``[n]`` ``Int64`` seconds, nulls kept.

    Raises:
        DataError: naming the first value that is none of the above.

    Example:
        >>> parse_timestamp(pl.Series("t", ["5", "7.9", "1970-01-02"]), path="x",
        ...                 row_of=lambda i: i).to_list()
        [5, 7, 86400]
    """
    if s.dtype.is_integer():
        return s.cast(pl.Int64)
    if s.dtype.is_float():
        f = s.fill_nan(None)
        bad = f.is_infinite() | (f.abs() > 2.0**62)
        if bad.any():
            raise _fail("timestamp out of range", s, bad, path=path, row_of=row_of)
        return f.cast(pl.Int64)
    if s.dtype == pl.Date:
        return s.cast(pl.Datetime("us")).dt.epoch("s")
    if isinstance(s.dtype, pl.Datetime):
        return s.dt.epoch("s")
    if s.dtype not in (pl.String, pl.Categorical):
        raise DataError(f"expected a timestamp, found {s.dtype}", path=path, column=s.name)
    s = s.cast(pl.String)
    fast = s.cast(pl.Int64, strict=False)
    if fast.null_count() == s.null_count():
        return fast
    c = _clean(s)
    out = c.cast(pl.Int64, strict=False)
    todo = c.is_not_null() & out.is_null()
    if not todo.any():
        return out
    idx = todo.arg_true()
    x = pl.col("f")
    truncated = (
        c.gather(idx)
        .cast(pl.Float64, strict=False)
        .to_frame("f")
        .select(pl.when(x.is_finite() & (x.abs() <= 2.0**62)).then(x).cast(pl.Int64))
        .to_series()
    )
    out = out.scatter(idx, truncated)
    todo = c.is_not_null() & out.is_null()
    if not todo.any():
        return out
    idx = todo.arg_true()
    out = out.scatter(idx, _parse_iso(c.gather(idx)))
    bad = c.is_not_null() & out.is_null()
    if bad.any():
        raise _fail(
            "unparsable timestamp (expected unix seconds or an ISO-8601 date/datetime)",
            s,
            bad,
            path=path,
            row_of=row_of,
        )
    return out


def _parse_iso(text: pl.Series) -> pl.Series:
    """ISO-8601 strings -> ``Int64`` unix seconds (null where no format matches)."""
    out = pl.repeat(None, len(text), dtype=pl.Int64, eager=True)
    for fmt in (_DATE_FORMAT, *_ISO_FORMATS):
        todo = out.is_null()
        if not todo.any():
            break
        idx = todo.arg_true()
        out = out.scatter(idx, _iso_seconds(text.gather(idx), fmt))
    return out


def _iso_seconds(text: pl.Series, fmt: str) -> pl.Series:
    """``text`` in format ``fmt`` -> ``Int64`` unix seconds (null where it does not match)."""
    if fmt == _DATE_FORMAT:
        parsed = text.str.to_date(fmt, strict=False).cast(pl.Datetime("us"))
    else:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
    return parsed.dt.epoch("s").cast(pl.Int64)


def infer_column(s: pl.Series) -> pl.Series:
    """Type an attribute column: Int64 if all integers (no leading zeros), Float64 if all
    numbers, else the text unchanged. Non-text columns pass through."""
    if s.dtype != pl.String:
        return s
    if s.str.contains(r"^\s*[+-]?0\d").any():  # codes like zip "01234": keep the text
        return s
    fast = s.cast(pl.Int64, strict=False)
    if fast.null_count() == s.null_count():
        return fast if s.null_count() < len(s) else s
    c = _clean(s)
    if c.null_count() == len(c):
        return s
    as_int = c.cast(pl.Int64, strict=False)
    if as_int.null_count() == c.null_count():
        return as_int
    as_float = c.cast(pl.Float64, strict=False)
    if as_float.null_count() == c.null_count():
        return as_float
    return s

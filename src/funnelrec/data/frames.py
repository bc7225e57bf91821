"""In-memory tables (pandas or polars) to canonical tables, with the file loader's rules."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from funnelrec.data.validate import DropReport, coerce_table
from funnelrec.errors import DataError
from funnelrec.schema import INTERACTIONS, ITEMS, USERS, TableSpec

_NewFloat32 = Callable[[str, NDArray[np.float32], bool], Any]
_new_f32: _NewFloat32 | None
_PyDataFrame: Any
try:  # polars' own constructors (see float32_series, _gather); absent in another polars build
    from polars._plr import PyDataFrame as _PyDataFrame
    from polars._plr import PySeries

    _new_f32 = PySeries.new_f32
except ImportError:  # pragma: no cover - depends on the polars build
    _new_f32 = _PyDataFrame = None


def as_polars(frame: Any, name: str) -> pl.DataFrame:
    """A polars DataFrame from a polars or pandas one (or anything ``pl.DataFrame`` takes).

    Raises:
        DataError: ``frame`` is not a table.
    """
    if isinstance(frame, pl.DataFrame):
        return frame
    if type(frame).__module__.startswith("pandas"):
        return pl.from_pandas(frame)
    try:
        return pl.DataFrame(frame)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name}: expected a pandas or polars DataFrame ({e})") from None


def canonical_frame(frame: Any, spec: TableSpec) -> tuple[pl.DataFrame, DropReport]:
    """Validate and cast one in-memory table as :func:`~funnelrec.data.io.read_table` does for
    a file: defaults filled (``event = click``, ``value = 1.0``), timestamps parsed, rows
    with null keys dropped and counted."""
    return coerce_table(as_polars(frame, spec.name), spec, path=f"<{spec.name} frame>")


def canonical_frames(
    interactions: Any, items: Any = None, users: Any = None
) -> tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame | None, tuple[DropReport, ...]]:
    """The three canonical tables (items/users optional) and their drop reports."""
    inter, report = canonical_frame(interactions, INTERACTIONS)
    reports = [report]
    tables: dict[str, pl.DataFrame | None] = {"items": None, "users": None}
    for key, frame, spec in (("items", items, ITEMS), ("users", users, USERS)):
        if frame is not None:
            tables[key], extra = canonical_frame(frame, spec)
            reports.append(extra)
    return inter, tables["items"], tables["users"], tuple(reports)


def rows_where(frame: pl.DataFrame, mask: NDArray[np.bool_]) -> pl.DataFrame:
    """The rows of ``frame`` where ``mask`` is true, in order.

    An eager gather: ``DataFrame.filter`` plans and collects a lazy query, ~0.06 ms more per
    call, which a served request (a dozen such steps on a few hundred rows) pays each time.

    Example:
        >>> rows_where(pl.DataFrame({"a": [1, 2, 3]}), np.array([True, False, True]))["a"].to_list()
        [1, 3]
    """
    if mask.shape != (frame.height,):
        raise ValueError(f"mask of shape {mask.shape} for a frame of {frame.height} rows")
    # A gather copies every column (~10 us each on a request's wide candidate frame): a mask
    # that keeps everything or nothing, the common case on the request path, copies nothing.
    if mask.all():
        return frame
    if not mask.any():
        return frame.clear()
    return _gather(frame, np.flatnonzero(mask))


def rows_at(frame: pl.DataFrame, rows: NDArray[np.integer]) -> pl.DataFrame:
    """The rows ``rows`` of ``frame``, in that order; ``frame`` itself when that is all of
    it in order (no copy: see :func:`rows_where`).

    Example:
        >>> rows_at(pl.DataFrame({"a": [1, 2, 3]}), np.array([2, 0]))["a"].to_list()
        [3, 1]
    """
    if rows.shape[0] == frame.height and np.array_equal(rows, np.arange(frame.height)):
        return frame
    if rows.size and rows.min() < 0:  # counted from the end: polars' own indexing rules
        return frame[rows]
    return _gather(frame, rows)


def _gather(frame: pl.DataFrame, rows: NDArray[np.integer]) -> pl.DataFrame:
    """``frame[rows]`` for non-negative ``rows``, column by column through a polars index
    Series.

    Indexing with a NumPy array checks and converts it in Python first (~70 us per call on a
    request's 500-row frame), and a DataFrame gather hands the columns to polars' thread
    pool, a fixed ~40-70 us of CPU per call however few rows and columns it takes (measured
    on a served request's frames: one Float32 column of 500 rows cost as much as 39). The
    gather of each column on the calling thread is ~1 us; the values are the same.
    """
    if rows.size and rows.max() >= frame.height:
        return frame[rows]  # out of bounds: polars' own error
    if _PyDataFrame is None or frame.width == 0:  # no columns: the frame's own height rule
        return frame[pl.Series(rows.astype(_INDEX_DTYPE, copy=False))]
    # Native columns and index: the Series wrappers of iter_columns and pl.Series cost more
    # (~25 and ~6 us on a request's 40-column frame) than the gathers themselves (~15 us).
    index = _native_index(rows)
    columns = [column.gather_with_series(index) for column in frame._df.get_columns()]
    return pl.DataFrame._from_pydf(_PyDataFrame(columns))


def _native_index(rows: NDArray[np.integer]) -> Any:
    """``rows`` (in bounds, non-negative) as polars' native index series."""
    values = np.ascontiguousarray(rows, dtype=_INDEX_DTYPE)  # it panics on a strided view
    return PySeries.new_u64("", values, False) if _INDEX_64 else PySeries.new_u32("", values, False)


def column_arrays(frame: pl.DataFrame, names: Sequence[str]) -> list[NDArray[Any]]:
    """``[frame[name].to_numpy() for name in names]``: the same arrays (views where polars
    can give one; nulls as NaN), without the Python wrappers of ``get_column`` and
    ``to_numpy`` (~1 us a column, which a served request pays for ~60 evidence columns).

    Example:
        >>> column_arrays(pl.DataFrame({"a": [1, 2], "b": [0.5, None]}), ["b"])[0].tolist()
        [0.5, nan]
    """
    if _PyDataFrame is None:  # pragma: no cover - depends on the polars build
        return [frame.get_column(name).to_numpy() for name in names]
    native = frame._df
    return [native.get_column(name).to_numpy(False, True) for name in names]


def select_columns(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """``frame[names]`` (the named columns, in that order, no copy) from polars' native
    columns: ``frame[list]`` first tries the list as a row selection (a Series built and an
    exception caught, ~14-28 us on a request's frames) and ``select`` plans a lazy query.

    Example:
        >>> select_columns(pl.DataFrame({"a": [1], "b": [2]}), ["b"]).columns
        ['b']
    """
    if _PyDataFrame is None:  # pragma: no cover - depends on the polars build
        return frame[list(names)]
    native = frame._df
    return pl.DataFrame._from_pydf(_PyDataFrame([native.get_column(name) for name in names]))


def gather_series(series: pl.Series, rows: NDArray[np.integer]) -> pl.Series:
    """``series[rows]`` for ``rows`` in ``[0, len(series))``, on the calling thread.

    ``Series.gather`` runs a lazy query through polars' thread pool (~30 us a call, more
    on a loaded box when the pool thread has to wake up); this is the same gather, ~1 us.

    Example:
        >>> gather_series(pl.Series("s", ["a", "b", "c"]), np.array([2, 0])).to_list()
        ['c', 'a']
    """
    if rows.size and (rows.min() < 0 or rows.max() >= series.len()):
        raise IndexError(f"rows must be in [0, {series.len()})")
    if _PyDataFrame is None:  # pragma: no cover - depends on the polars build
        return series.gather(pl.Series(rows.astype(_INDEX_DTYPE, copy=False)))
    return pl.Series._from_pyseries(series._s.gather_with_series(_native_index(rows)))


# polars' row index type as NumPy: UInt32, or UInt64 in its 64-bit-index build.
_INDEX_64 = pl.get_index_type() == pl.UInt64
_INDEX_DTYPE = np.dtype(np.uint64) if _INDEX_64 else np.dtype(np.uint32)


def string_column(name: str, labels: Sequence[str], codes: NDArray[np.integer]) -> pl.Series:
    """A String column of ``labels[codes]`` (``codes`` in ``[0, len(labels))``).

    Built from Arrow string views gathered in NumPy: polars stores strings as views, so it
    takes them without a conversion, where a gather of Arrow strings plus the conversion
    costs ~40 us per 500 rows (the merge's channel names, on every request).

    Example:
        >>> string_column("s", ["a", "bc"], np.array([1, 0, 1])).to_list()
        ['bc', 'a', 'bc']
    """
    return pl.Series(name, string_array(labels, codes))


def string_array(labels: Sequence[str], codes: NDArray[np.integer]) -> pa.Array:
    """:func:`string_column` as an Arrow array (for a record batch of several columns)."""
    return _string_views(tuple(labels), codes)


def string_list_column(
    name: str, labels: Sequence[str], offsets: NDArray[np.int64], codes: NDArray[np.integer]
) -> pl.Series:
    """A List(String) column: row ``i`` holds ``labels[codes[offsets[i]:offsets[i + 1]]]``
    (``offsets`` ``[N + 1]`` int64, from 0). Views as in :func:`string_column`.

    Example:
        >>> offsets = np.array([0, 2, 2, 3])
        >>> string_list_column("s", ["a", "b"], offsets, np.array([0, 1, 1])).to_list()
        [['a', 'b'], [], ['b']]
    """
    return pl.Series(name, string_list_array(labels, offsets, codes))


def string_list_array(
    labels: Sequence[str], offsets: NDArray[np.int64], codes: NDArray[np.integer]
) -> pa.Array:
    """:func:`string_list_column` as an Arrow array."""
    values = _string_views(tuple(labels), codes)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    return pa.LargeListArray.from_arrays(pa.array(offsets), values)


def _string_views(labels: tuple[str, ...], codes: NDArray[np.integer]) -> pa.Array:
    """``labels[codes]`` as an Arrow ``string_view`` array (views gathered in NumPy)."""
    views, data = _label_views(labels)
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= len(labels)):
        raise ValueError(f"codes must be in [0, {len(labels)})")
    taken = views[codes]
    return pa.Array.from_buffers(
        pa.string_view(), codes.shape[0], [None, pa.py_buffer(taken), data]
    )


@lru_cache(maxsize=256)
def _label_views(labels: tuple[str, ...]) -> tuple[NDArray[np.void], pa.Buffer]:
    """One 16-byte Arrow string view per label and the data buffer the long ones point into.

    A view is the byte length (int32) then, for at most 12 bytes, the bytes inline (zero
    padded); for longer strings their first 4 bytes, the buffer index (0) and the offset.
    """
    views = []
    data = bytearray()
    for label in labels:
        raw = label.encode()
        if len(raw) <= 12:
            views.append(struct.pack("<i12s", len(raw), raw))
        else:
            views.append(struct.pack("<i4sii", len(raw), raw[:4], 0, len(data)))
            data += raw
    array = np.frombuffer(b"".join(views), dtype=np.dtype((np.void, 16))).copy()
    return array, pa.py_buffer(bytes(data))


def float32_series(
    name: str, values: NDArray[np.float32], *, nan_is_null: bool = False
) -> pl.Series:
    """``pl.Series(name, values)`` of a Float32 array (NaN as null with ``nan_is_null``)
    through polars' own constructor: the public one spends ~5 us a column on checks (byte
    order, masks, contiguity) that a fresh contiguous array passes, and a column built from
    Arrow buffers with a validity bitmap costs ~25 us; a served request builds ~40 columns.

    Example:
        >>> float32_series("x", np.array([1, np.nan], np.float32), nan_is_null=True).to_list()
        [1.0, None]
    """
    values = np.ascontiguousarray(values, dtype=np.float32)  # it panics on a strided view
    if _new_f32 is None:  # pragma: no cover - depends on the polars build
        series = pl.Series(name, values)
        return series.fill_nan(None) if nan_is_null else series
    return pl.Series._from_pyseries(_new_f32(name, values, nan_is_null))


def masked_float32_column(
    name: str, values: NDArray[np.float32], present: NDArray[np.bool_]
) -> pl.Series:
    """A Float32 column of ``values``, null where not ``present`` (a NaN value stays NaN):
    :func:`masked_float32_columns` of one column.

    Example:
        >>> present = np.array([True, False, True])
        >>> masked_float32_column("x", np.array([1, 2, np.nan], np.float32), present).to_list()
        [1.0, None, nan]
    """
    # A values array that is not [N] gives [1, ...] here, which the shape check refuses.
    return masked_float32_columns([name], np.asarray(values)[None, :], present)[0]


def masked_float32_columns(
    names: Sequence[str], values: NDArray[np.float32], present: NDArray[np.bool_]
) -> list[pl.Series]:
    """One :func:`masked_float32_column` per row of ``values`` ``[C, N]``, all null where
    ``present`` ``[N]`` is false (the validity bitmap is made once for all of them).

    Example:
        >>> values = np.array([[1, 2], [3, 4]], np.float32)
        >>> [s.to_list() for s in masked_float32_columns("ab", values, np.array([True, False]))]
        [[1.0, None], [3.0, None]]
    """
    data = np.ascontiguousarray(values, dtype=np.float32)
    if data.ndim != 2 or present.shape != data.shape[1:] or len(names) != data.shape[0]:
        raise ValueError(
            f"values {data.shape} must be [{len(names)}, N] with present {present.shape} [N]"
        )
    if present.all():
        return [float32_series(name, row) for name, row in zip(names, data, strict=True)]
    if not np.isnan(data[:, present]).any():
        # No NaN among the values kept, so NaN can mark the nulls: polars' constructor then
        # builds each column in ~2 us where the Arrow buffers below cost ~25 us.
        marked = np.where(present, data, np.float32(np.nan))
        return [
            float32_series(name, row, nan_is_null=True)
            for name, row in zip(names, marked, strict=True)
        ]
    validity = _validity(present)
    return [
        pl.Series(name, _float32_array(row, validity))
        for name, row in zip(names, data, strict=True)
    ]


def _validity(present: NDArray[np.bool_]) -> pa.Buffer | None:
    """An Arrow validity bitmap of ``present`` (None: every value present)."""
    return None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))


def _float32_array(data: NDArray[np.float32], validity: pa.Buffer | None) -> pa.Array:
    """A float32 Arrow array over ``data`` (contiguous) with ``validity``."""
    return pa.Array.from_buffers(pa.float32(), data.shape[0], [validity, pa.py_buffer(data)])

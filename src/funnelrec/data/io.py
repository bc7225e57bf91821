"""Read, validate and write the canonical tables (interactions, items, users).

Every way a file can be wrong raises a :class:`~funnelrec.errors.DataError` whose one-line message
names the file and, where known, the row (1-based file line, header = row 1; for Parquet the
1-based record number) and the column. Rows that are unusable but not malformed (a null id or
timestamp, a blank line) are dropped and counted per reason in a :class:`DropReport`, never lost
silently.

Parsing rules applied on entry (CSV/TSV columns are read as strings first, then cast, so the
first offending row can be named):

* ids (``user_id``, ``item_id``, ``session_id``): ``Int64`` when every value is an integer
  (``"1.0"`` counts), otherwise ``String``; an all-numeric column holding a fractional value
  such as ``1.5`` is an error.
* ``timestamp`` and ``created_at``: ``Int64`` unix seconds. Accepted: integers, floats
  (truncated toward zero) and ISO-8601 dates/datetimes (``2020-01-02``,
  ``2020-01-02T03:04:05.123+01:00``, ``... Z``), naive ones read as UTC.
* ``value``: ``Float32``; ``event``: ``String``; ``position``: ``Int64``.
* interactions: a missing ``event`` column defaults to ``"click"`` and a missing ``value``
  column to ``1.0``; null cells in present columns get the same defaults, counted in
  :attr:`DropReport.filled`.
* ``nan``, ``NaN``, ``null``, ``None``, ``NA``, ``N/A`` and empty cells are nulls in every
  parsed (non-text) column.
* other columns are kept: integers become ``Int64`` (unless some value has a leading zero, as
  zip codes do), other numbers ``Float64``, the rest stays text.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from funnelrec.errors import DataError
from funnelrec.schema import INTERACTIONS, ITEMS, USERS, TableSpec, check_schema

logger = logging.getLogger(__name__)

SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".parquet")
"""File types :func:`read_table` reads (``.tsv`` is tab-separated)."""

NULL_TOKENS: tuple[str, ...] = ("", "nan", "NaN", "NAN", "null", "NULL", "None", "NA", "N/A")
"""Cell texts read as null in parsed (id, number, timestamp) columns."""

TIME_COLUMNS: tuple[str, ...] = ("timestamp", "created_at")
"""Columns parsed as unix-second timestamps wherever they appear."""

DEFAULTS: Mapping[str, Mapping[str, str | float]] = {
    "interactions": {"event": "click", "value": 1.0},
}
"""Per table: column -> value used when the column is absent or a cell is null."""

_DEFAULT_DTYPES: Mapping[str, pl.DataType] = {"event": pl.String(), "value": pl.Float32()}

_ISO_FORMATS: tuple[str, ...] = tuple(
    f"%Y-%m-%d{sep}{time}"
    for sep in ("T", " ")
    for time in ("%H:%M:%S%.f", "%H:%M:%S%.f%#z", "%H:%M", "%H:%M%#z")
)

RowOf = Callable[[int], int]
"""Maps a 0-based frame index to the row number named in errors."""


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


@dataclass(frozen=True)
class RawTables:
    """Canonical tables as read from disk, before indexing into a ``Dataset``.

    Attributes:
        interactions: the interactions table (``INTERACTIONS`` schema).
        items: item attributes (``ITEMS`` schema) or None.
        users: user attributes (``USERS`` schema) or None.
        reports: one :class:`DropReport` per source file read.
        notes: facts a reader of the data should know (e.g. synthesised timestamps).
    """

    interactions: pl.DataFrame
    items: pl.DataFrame | None = None
    users: pl.DataFrame | None = None
    reports: tuple[DropReport, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_schema(self.interactions, INTERACTIONS)
        if self.items is not None:
            check_schema(self.items, ITEMS)
        if self.users is not None:
            check_schema(self.users, USERS)

    @property
    def tables(self) -> dict[str, pl.DataFrame]:
        """The tables present, keyed by canonical name."""
        out = {"interactions": self.interactions}
        if self.items is not None:
            out["items"] = self.items
        if self.users is not None:
            out["users"] = self.users
        return out


# ----------------------------------------------------------------------------------------------
# public entry points


def read_table(path: Path, spec: TableSpec) -> tuple[pl.DataFrame, DropReport]:
    """Read one CSV/TSV/Parquet file as the canonical table ``spec`` describes.

    Args:
        path: a ``.csv``, ``.tsv`` (tab-separated) or ``.parquet`` file.
        spec: the declared table (``INTERACTIONS``, ``ITEMS`` or ``USERS``).

    Returns:
        The validated table (spec columns first, extra columns kept after them) and the
        :class:`DropReport` of rows dropped for null keys.

    Raises:
        DataError: the file is missing, empty, of an unsupported type, not valid UTF-8, has a
            duplicated column name or header line, misses a required column, holds a value
            that cannot be parsed, or has no usable row left.

    Example:
        >>> import tempfile
        >>> from funnelrec.schema import INTERACTIONS
        >>> p = Path(tempfile.mkdtemp()) / "interactions.csv"
        >>> _ = p.write_text("user_id,item_id,timestamp\\n1,10,2020-01-01\\n2,,5\\n")
        >>> df, report = read_table(p, INTERACTIONS)
        >>> df.row(0)
        (1, 10, 1577836800, 'click', 1.0)
        >>> report.dropped
        {'null item_id': 1}
    """
    path = Path(path)
    suffix = _check_file(path)
    if suffix == ".parquet":
        raw = _read_parquet(path)
        return coerce_table(raw, spec, path=str(path))
    raw, row_of = read_text_table(path, separator="\t" if suffix == ".tsv" else ",")
    _check_no_header_rows(raw, path, row_of)
    return coerce_table(raw, spec, path=str(path), row_of=row_of, header_row=1)


def load_dataset_dir(path: Path) -> RawTables:
    """Read a dataset folder in the canonical layout.

    The folder holds ``interactions.(csv|tsv|parquet)`` (required) and optionally
    ``items.*`` and ``users.*`` with the same suffixes.

    Args:
        path: the folder.

    Returns:
        The tables and one :class:`DropReport` per file.

    Raises:
        DataError: the folder is missing, has no interactions file, has two candidates for one
            table (``interactions.csv`` and ``interactions.parquet``), or a file is invalid.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "interactions.csv").write_text("user_id,item_id,timestamp\\n1,10,5\\n")
        >>> load_dataset_dir(d).interactions.height
        1
    """
    path = Path(path)
    if not path.exists():
        raise DataError("dataset folder does not exist", path=str(path))
    if not path.is_dir():
        raise DataError("expected a dataset folder, found a file", path=str(path))
    tables: dict[str, pl.DataFrame] = {}
    reports: list[DropReport] = []
    for spec in (INTERACTIONS, ITEMS, USERS):
        candidates = [p for s in SUFFIXES if (p := path / f"{spec.name}{s}").exists()]
        if len(candidates) > 1:
            names = " and ".join(c.name for c in candidates)
            raise DataError(f"two {spec.name} files ({names}); keep exactly one", path=str(path))
        if candidates:
            tables[spec.name], report = read_table(candidates[0], spec)
            reports.append(report)
        elif spec is INTERACTIONS:
            expected = ", ".join(f"interactions{s}" for s in SUFFIXES)
            raise DataError(f"no interactions file (expected one of {expected})", path=str(path))
    return RawTables(
        interactions=tables["interactions"],
        items=tables.get("items"),
        users=tables.get("users"),
        reports=tuple(reports),
    )


def write_tables(tables: RawTables, dst_dir: Path) -> tuple[Path, ...]:
    """Write the tables as canonical Parquet: ``interactions.parquet``, ``items.parquet``,
    ``users.parquet`` (the latter two only when present).

    A stale ``items.parquet``/``users.parquet`` left by an earlier write is removed when the
    table is absent now, so :func:`load_dataset_dir` reads back exactly ``tables``. Each file is
    written to a temporary name first and renamed, so a crash never leaves a half-written table.

    Args:
        tables: the tables to write.
        dst_dir: the destination folder (created if needed).

    Returns:
        The paths written.

    Example:
        >>> import tempfile
        >>> inter = pl.DataFrame({"user_id": [1], "item_id": [2], "timestamp": [3],
        ...                       "event": ["click"], "value": [1.0]})
        >>> [p.name for p in write_tables(RawTables(inter), Path(tempfile.mkdtemp()))]
        ['interactions.parquet']
    """
    dst_dir = Path(dst_dir)
    if dst_dir.exists() and not dst_dir.is_dir():
        raise DataError("expected an output folder, found a file", path=str(dst_dir))
    dst_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("interactions", "items", "users"):
        df = tables.tables.get(name)
        target = dst_dir / f"{name}.parquet"
        if df is None:
            target.unlink(missing_ok=True)
            continue
        tmp = dst_dir / f".{name}.parquet.tmp"
        df.write_parquet(tmp)
        tmp.replace(target)
        written.append(target)
    return tuple(written)


# ----------------------------------------------------------------------------------------------
# reading text and Parquet files


def read_text_table(
    path: Path,
    *,
    separator: str = ",",
    columns: Sequence[str] | None = None,
    quote_char: str | None = '"',
    encoding: str = "utf-8",
) -> tuple[pl.DataFrame, RowOf]:
    """Read a delimited text file with every column as a string.

    Args:
        path: the file.
        separator: field separator; may be several characters (MovieLens' ``::``).
        columns: None when the first line is a header (names are stripped and must be unique);
            otherwise the names of a headerless file, which must have exactly that many fields
            (shorter lines are padded with nulls).
        quote_char: quoting character, or None for files that never quote (MIND, MovieLens).
        encoding: any Python codec; files not in UTF-8 are decoded in memory.

    Returns:
        The ``[n_rows, n_columns]`` all-``String`` frame and a function mapping a frame index
        to its 1-based file line (header = line 1), exact even with quoted multi-line cells.

    Raises:
        DataError: the file is missing or empty, has bad bytes for ``encoding``, a line with
            too many fields, or a duplicated column name.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "file does not exist" if not path.exists() else "not a file", path=str(path)
        )
    if path.stat().st_size == 0:
        raise DataError("file is empty (0 bytes)", path=str(path))
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    data: bytes | None = None
    if not utf8 or len(separator) > 1:
        data = path.read_bytes()
        if not utf8:
            try:
                data = data.decode(encoding).encode("utf-8")
            except (UnicodeDecodeError, LookupError) as exc:
                raise DataError(f"cannot decode as {encoding}: {exc}", path=str(path)) from None
        if len(separator) > 1:
            data = data.replace(separator.encode("utf-8"), b"\x1f")
    sep = "\x1f" if len(separator) > 1 else separator
    header = columns is None
    names = _read_header(path, data, sep, quote_char) if header else list(columns or ())
    try:
        raw = pl.read_csv(
            data if data is not None else path,
            separator=sep,
            has_header=header,
            infer_schema=False,
            quote_char=quote_char,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise _explain_read_failure(path, data, sep, quote_char, names, header, exc) from None
    if raw.width != len(names):
        raise DataError(
            f"expected {len(names)} fields per line ({', '.join(names)}), found {raw.width}",
            path=str(path),
            row=1,
        )
    raw = raw.rename(dict(zip(raw.columns, names, strict=True)))
    if raw.height == 0:
        raise DataError("no rows (the file has only a header)", path=str(path))
    return raw, _line_locator(raw, first_row=2 if header else 1)


def _check_file(path: Path) -> str:
    if not path.exists():
        raise DataError("file does not exist", path=str(path))
    if path.is_dir():
        raise DataError("expected a file, found a directory", path=str(path))
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"unsupported file type '{path.suffix}' (supported: {', '.join(SUFFIXES)})",
            path=str(path),
        )
    if path.stat().st_size == 0:
        raise DataError("file is empty (0 bytes)", path=str(path))
    return suffix


def _read_header(path: Path, data: bytes | None, sep: str, quote_char: str | None) -> list[str]:
    """The stripped, unique column names of the first line."""
    head = data[: 1 << 20] if data is not None else _head_bytes(path)
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < head.find(b"\n") or b"\n" not in head:
            raise DataError("header is not valid UTF-8", path=str(path), row=1) from None
        text = head[: exc.start].decode("utf-8-sig")
    reader = _csv_reader(io.StringIO(text, newline=""), sep, quote_char)
    names = [n.strip() for n in next(reader, [])]
    seen: set[str] = set()
    for j, name in enumerate(names):
        if not name:
            names[j] = name = f"column_{j + 1}"
            logger.warning("%s: column %d has no name; calling it %s", path, j + 1, name)
        if name in seen:
            raise DataError(
                "duplicated column name in the header", path=str(path), row=1, column=name
            )
        seen.add(name)
    return names


def _head_bytes(path: Path, size: int = 1 << 20) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def _csv_reader(fh: io.StringIO, sep: str, quote_char: str | None) -> csv._reader:
    if quote_char is None:
        return csv.reader(fh, delimiter=sep, quoting=csv.QUOTE_NONE)
    return csv.reader(fh, delimiter=sep, quotechar=quote_char)


def _explain_read_failure(
    path: Path,
    data: bytes | None,
    sep: str,
    quote_char: str | None,
    names: list[str],
    header: bool,
    exc: Exception,
) -> DataError:
    """Turn a polars parse failure into a DataError naming the first bad line (slow path)."""
    raw = data if data is not None else path.read_bytes()
    for lineno, line in enumerate(raw.splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return DataError(
                "not valid UTF-8 (re-encode the file, or use a converter for its format)",
                path=str(path),
                row=lineno,
            )
    text = raw.decode("utf-8-sig")
    reader = _csv_reader(io.StringIO(text, newline=""), sep, quote_char)
    n_fields = len(names)
    for i, record in enumerate(reader):
        if i == 0 and not header and len(record) != n_fields:
            return DataError(
                f"expected {n_fields} fields per line ({', '.join(names)}), found {len(record)}",
                path=str(path),
                row=reader.line_num,
            )
        if len(record) > n_fields:
            return DataError(
                f"{len(record)} fields, more than the {n_fields} columns of the header",
                path=str(path),
                row=reader.line_num,
            )
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"cannot parse the file: {message}", path=str(path))


def _line_locator(raw: pl.DataFrame, first_row: int) -> RowOf:
    """Frame index -> file line, counting newlines inside quoted cells of earlier rows."""

    def row_of(i: int) -> int:
        extra = 0
        if i > 0:
            head = raw.head(i)
            for name, dtype in head.schema.items():
                if dtype == pl.String:
                    extra += int(head[name].str.count_matches("\n", literal=True).sum() or 0)
        return first_row + i + extra

    return row_of


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several unrelated types for a garbled file
        raise DataError(f"not a readable Parquet file ({exc})", path=str(path)) from None
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError("duplicated column name", path=str(path), column=name)
        seen.add(name)
    try:
        raw = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"not a readable Parquet file ({exc})", path=str(path)) from None
    if raw.height == 0:
        raise DataError("no rows", path=str(path))
    return raw


def _check_no_header_rows(raw: pl.DataFrame, path: Path, row_of: RowOf) -> None:
    """Reject a data row made of column names (two CSV files concatenated, header and all)."""
    names = list(raw.columns)
    # cheap pre-filter on the first column, then the full comparison on the few candidates
    candidates = raw.with_row_index("_i").filter(
        pl.col(names[0]).str.contains_any(names).fill_null(False)
    )
    looks_like_header = pl.all_horizontal(
        [pl.col(c).str.strip_chars(" \t\r\ufeff").is_in(names).fill_null(False) for c in names]
    )
    hits = candidates.filter(looks_like_header)["_i"]
    if hits.len():
        i = int(hits[0])
        raise DataError(
            "duplicated header line (were two files concatenated?)", path=str(path), row=row_of(i)
        )


# ----------------------------------------------------------------------------------------------
# validation and casting


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
    empty = raw.select(pl.all_horizontal(pl.all().is_null())).to_series()
    spec_kinds = {c.name: c.kind for c in spec.columns}
    cols: dict[str, pl.Series] = {}
    for name in raw.columns:
        shown = raw[name].alias(source_names.get(name, name)) if source_names else raw[name]
        parsed = _coerce_column(shown, name, spec_kinds.get(name), path=path, row_of=row_of)
        cols[name] = parsed.alias(name)
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
    order = [c.name for c in spec.columns if c.name in cols]
    order += [c for c in raw.columns if c not in order]
    df = pl.DataFrame([cols[c] for c in order])

    keys = [c.name for c in spec.columns if c.required and c.name not in defaults]
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
    return _infer(s)


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
    value = raw[i]
    shown = repr(value if not isinstance(value, str) or len(value) <= 40 else value[:37] + "...")
    return DataError(f"{message}, found {shown}", path=path, row=row_of(i), column=raw.name)


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
                "%s: column '%s' mixes integer and text ids (first text id %r at row %d); "
                "reading all as text",
                path,
                s.name,
                c[i],
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
    f = pl.col("f")
    truncated = (
        c.gather(idx)
        .cast(pl.Float64, strict=False)
        .to_frame("f")
        .select(pl.when(f.is_finite() & (f.abs() <= 2.0**62)).then(f).cast(pl.Int64))
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
    parsers: list[Callable[[pl.Series], pl.Series]] = [
        lambda t: t.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.epoch("s")
    ]
    parsers += [
        (lambda t, fmt=fmt: t.str.to_datetime(fmt, strict=False, time_unit="us").dt.epoch("s"))
        for fmt in _ISO_FORMATS
    ]
    for parse in parsers:
        todo = out.is_null()
        if not todo.any():
            break
        idx = todo.arg_true()
        out = out.scatter(idx, parse(text.gather(idx)).cast(pl.Int64))
    return out


def _infer(s: pl.Series) -> pl.Series:
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

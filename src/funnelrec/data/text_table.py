"""Read delimited text files (CSV, TSV, MIND/MovieLens layouts) as all-string frames whose
rows can be traced back to their file lines.

Columns are read as strings so that parsing (:mod:`funnelrec.data.parse`) can name the first
offending row; a malformed file raises a :class:`~funnelrec.errors.DataError` naming the file
and, where known, the line.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from funnelrec.data.parse import RowOf
from funnelrec.errors import DataError

if TYPE_CHECKING:
    from _csv import Reader  # the stubs' name for csv.reader's result; private at runtime

logger = logging.getLogger(__name__)


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


def _csv_reader(fh: io.StringIO, sep: str, quote_char: str | None) -> Reader:
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


def check_no_header_rows(raw: pl.DataFrame, path: Path, row_of: RowOf) -> None:
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

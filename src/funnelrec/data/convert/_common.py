"""Helpers shared by the format converters: locating source files and layout-specific parsing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from funnelrec.data.parse import RowOf
from funnelrec.errors import DataError, quoted


def require_dir(src: Path, format_name: str) -> Path:
    """The dataset folder: ``src`` itself, or its parent when ``src`` is one of its files.

    Raises:
        DataError: ``src`` does not exist.
    """
    src = Path(src)
    if not src.exists():
        raise DataError(f"{format_name} source folder does not exist", path=str(src))
    return src if src.is_dir() else src.parent


def require_file(folder: Path, name: str, format_name: str) -> Path:
    """Return ``folder / name``, or raise ``DataError`` naming the missing file."""
    path = folder / name
    if not path.is_file():
        raise DataError(f"missing {format_name} file '{name}'", path=str(path))
    return path


def find_one(folder: Path, patterns: Sequence[str], what: str) -> Path | None:
    """The single file matching any of ``patterns`` (globs), None when there is none.

    Raises:
        DataError: several files match, so the choice would be a guess.
    """
    matches = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise DataError(f"several {what} files ({names}); keep exactly one", path=str(folder))
    return matches[0] if matches else None


def require_columns(raw: pl.DataFrame, names: Iterable[str], path: Path) -> None:
    """Raise ``DataError`` (row 1 = header) naming the first of ``names`` absent from ``raw``."""
    for name in names:
        if name not in raw.columns:
            raise DataError(
                f"missing column (found {', '.join(raw.columns)})",
                path=str(path),
                row=1,
                column=name,
            )


def parse_datetime_format(
    s: pl.Series, fmt: str, *, path: Path, row_of: RowOf, date: bool = False
) -> pl.Series:
    """Parse text with one strptime format to ``Int64`` unix seconds (naive = UTC).

    Args:
        s: ``[n]`` text; nulls stay null.
        fmt: the strptime format (e.g. ``"%m/%d/%Y %I:%M:%S %p"``).
        path: source file named in errors.
        row_of: frame index -> row number named in errors.
        date: parse as a date (midnight UTC).

    Raises:
        DataError: naming the first non-null value the format does not match.
    """
    text = s.str.strip_chars()
    if date:
        parsed = text.str.to_date(fmt, strict=False).cast(pl.Datetime("us"))
    else:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
    bad = text.is_not_null() & (text != "") & parsed.is_null()
    if bad.any():
        i = int(bad.arg_max() or 0)
        raise DataError(
            f"cannot parse {quoted(s[i])} with format {fmt!r}",
            path=str(path),
            row=row_of(i),
            column=s.name,
        )
    return parsed.dt.epoch("s").alias(s.name)


def check_values(s: pl.Series, allowed: Sequence[str], *, path: Path, row_of: RowOf) -> None:
    """Raise ``DataError`` at the first non-null value of ``s`` not in ``allowed``."""
    bad = s.is_not_null() & ~s.is_in(list(allowed))
    if bad.any():
        i = int(bad.arg_max() or 0)
        raise DataError(
            f"unexpected value {quoted(s[i])} (expected one of {', '.join(allowed)})",
            path=str(path),
            row=row_of(i),
            column=s.name,
        )


def ones(s: pl.Series, *, path: Path, row_of: RowOf) -> pl.Series:
    """A 0/1 flag column (text or numeric) as a Boolean mask; other values are errors."""
    text = s.cast(pl.String).str.strip_chars().str.replace(r"\.0$", "")
    check_values(text, ("0", "1"), path=path, row_of=row_of)
    return (text == "1").fill_null(False)


def sniff_encoding(path: Path) -> str:
    """``"utf-8"`` when the file decodes as UTF-8, else ``"latin-1"`` (older MovieLens files)."""
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"

"""Read and write dataset folders in the canonical layout (interactions, items, users).

Every way a file can be wrong raises a :class:`~funnelrec.errors.DataError` whose one-line message
names the file and, where known, the row (1-based file line, header = row 1; for Parquet the
1-based record number) and the column. Rows that are unusable but not malformed (a null id or
timestamp, a blank line) are dropped and counted in a :class:`~funnelrec.data.validate.DropReport`.

Reading is layered: :mod:`funnelrec.data.text_table` reads CSV/TSV as strings,
:mod:`funnelrec.data.validate` applies the table rules and :mod:`funnelrec.data.parse` the
per-column parsing rules (ids, timestamps, numbers, nulls).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from funnelrec.data.partitioned import read_partitioned, write_partitioned
from funnelrec.data.text_table import check_no_header_rows, read_text_table
from funnelrec.data.validate import DropReport, coerce_table
from funnelrec.errors import DataError
from funnelrec.schema import INTERACTIONS, ITEMS, USERS, TableSpec, check_schema

SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".parquet")
"""File types :func:`read_table` reads (``.tsv`` is tab-separated)."""


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
    check_no_header_rows(raw, path, row_of)
    return coerce_table(raw, spec, path=str(path), row_of=row_of, header_row=1)


def load_dataset_dir(path: Path) -> RawTables:
    """Read a dataset folder in the canonical layout.

    The folder holds ``interactions.(csv|tsv|parquet)`` or an ``interactions/`` folder of
    hive-partitioned Parquet (``interactions/date=2024-01-01/part-0.parquet``, read lazily by
    :func:`~funnelrec.data.partitioned.read_partitioned`; required) and optionally
    ``items.*`` and ``users.*`` (plain files) with the same suffixes.

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
    notes: list[str] = []
    for spec in (INTERACTIONS, ITEMS, USERS):
        candidates = [p for s in SUFFIXES if (p := path / f"{spec.name}{s}").exists()]
        if spec is INTERACTIONS and (path / spec.name).is_dir():
            candidates.append(path / spec.name)
        if len(candidates) > 1:
            names = " and ".join(c.name for c in candidates)
            raise DataError(f"two {spec.name} files ({names}); keep exactly one", path=str(path))
        if candidates and candidates[0].is_dir():
            raw, dropped = read_partitioned(candidates[0], spec)
            tables[spec.name], report = coerce_table(raw, spec, path=str(candidates[0]))
            reports.append(report)
            if dropped:
                notes.append(
                    f"{spec.name}: partition column(s) {', '.join(dropped)} dropped "
                    "(not canonical columns)"
                )
        elif candidates:
            tables[spec.name], report = read_table(candidates[0], spec)
            reports.append(report)
        elif spec is INTERACTIONS:
            expected = ", ".join(f"interactions{s}" for s in SUFFIXES)
            raise DataError(
                f"no interactions file (expected one of {expected} or an interactions/ folder)",
                path=str(path),
            )
    return RawTables(
        interactions=tables["interactions"],
        items=tables.get("items"),
        users=tables.get("users"),
        reports=tuple(reports),
        notes=tuple(notes),
    )


def read_user_list(path: Path) -> pl.DataFrame:
    """The users ``funnelrec recommend`` serves: a users table (CSV/TSV/Parquet with a
    ``user_id`` column, optionally ``tags`` and attribute columns such as ``age``, read by the
    rules of every users table) or a text file of one id per line (no header).

    Returns:
        The table with ``user_id`` as text, one row per user (a repeated id is dropped with a
        warning, like any repeated key).

    Raises:
        DataError: the file is missing, empty, header-only, not UTF-8, has no ``user_id``
            column, or rows without an id.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "users.txt"
        >>> _ = p.write_text("u1\n\nu2\n")
        >>> read_user_list(p)["user_id"].to_list()
        ['u1', 'u2']
    """
    path = Path(path)
    _check_file(path, suffixes=None)
    if path.suffix.lower() in SUFFIXES and _has_table_header(path):
        frame, report = read_table(path, USERS)
    else:
        raw, row_of = read_text_table(path, columns=("user_id",), quote_char=None)
        frame, report = coerce_table(raw, USERS, path=str(path), row_of=row_of)
    missing = report.dropped.get("null user_id", 0)
    if missing:
        raise DataError(f"{missing} row(s) without a user id", path=str(path), column="user_id")
    return frame.with_columns(pl.col("user_id").cast(pl.String))


def _has_table_header(path: Path) -> bool:
    """Whether the file starts with a header line (Parquet always has names); a first line
    without a separator that is not ``user_id`` is a bare id, as in a one-id-per-line file."""
    if path.suffix.lower() == ".parquet":
        return True
    with path.open("rb") as fh:
        first = fh.readline(1 << 16).decode("utf-8", errors="replace").strip()
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    return separator in first or first.lstrip("\ufeff") == "user_id"


def write_tables(
    tables: RawTables, dst_dir: Path, *, partitioned: bool = False
) -> tuple[Path, ...]:
    """Write the tables as canonical Parquet: ``interactions.parquet``, ``items.parquet``,
    ``users.parquet`` (the latter two only when present). With ``partitioned`` the
    interactions go to an ``interactions/`` folder, one ``date=YYYY-MM-DD`` partition per UTC
    day (:func:`~funnelrec.data.partitioned.write_partitioned`) and a stale
    ``interactions.parquet`` is removed.

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
    if not partitioned and (dst_dir / "interactions").is_dir():
        raise DataError(
            "holds a partitioned interactions/ folder; write to another folder or remove it",
            path=str(dst_dir),
        )
    dst_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in ("interactions", "items", "users"):
        df = tables.tables.get(name)
        target = dst_dir / f"{name}.parquet"
        if partitioned and name == "interactions":
            written.extend(write_partitioned(tables.interactions, dst_dir / name))
            target.unlink(missing_ok=True)
            continue
        if df is None:
            target.unlink(missing_ok=True)
            continue
        tmp = dst_dir / f".{name}.parquet.tmp"
        df.write_parquet(tmp)
        tmp.replace(target)
        written.append(target)
    return tuple(written)


def _check_file(path: Path, suffixes: tuple[str, ...] | None = SUFFIXES) -> str:
    """The file's lower-case suffix, after checking it exists, is a non-empty file and (unless
    ``suffixes`` is None) has one of ``suffixes``."""
    if not path.exists():
        raise DataError("file does not exist", path=str(path))
    if path.is_dir():
        raise DataError("expected a file, found a directory", path=str(path))
    suffix = path.suffix.lower()
    if suffixes is not None and suffix not in suffixes:
        raise DataError(
            f"unsupported file type '{path.suffix}' (supported: {', '.join(suffixes)})",
            path=str(path),
        )
    if path.stat().st_size == 0:
        raise DataError("file is empty (0 bytes)", path=str(path))
    return suffix


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

"""Interactions as a hive-partitioned Parquet folder (``interactions/date=2024-01-01/*.parquet``).

The layout large logs arrive in (one folder per day, written by Spark, Hive or a daily job).
:func:`read_partitioned` scans it lazily with polars (``hive_partitioning=True``) and hands the
frame to the same validation as a single file; :func:`write_partitioned` writes it, one
folder per UTC day of ``timestamp``.

Partition columns (the ``key`` of ``key=value`` folder names) are kept when they are a column
of the table's spec (e.g. ``scenario=feed``) and dropped otherwise (``date``: it repeats the
timestamp's day); the dropped names are returned so the caller can say so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from funnelrec.errors import DataError
from funnelrec.schema import TableSpec

PARTITION_KEY = "date"
"""The partition column :func:`write_partitioned` writes (UTC day of ``timestamp``)."""


def partition_files(path: Path) -> list[Path]:
    """The folder's Parquet files (recursively, sorted), hidden files and folders excluded."""
    files = [
        p
        for p in path.rglob("*.parquet")
        if p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    ]
    return sorted(files)


def partition_keys(path: Path, files: list[Path]) -> list[str]:
    """The ``key`` names of the ``key=value`` folders between ``path`` and its files."""
    keys: list[str] = []
    for f in files:
        for part in f.relative_to(path).parts[:-1]:
            key = part.split("=", 1)[0] if "=" in part else None
            if key and key not in keys:
                keys.append(key)
    return keys


def read_partitioned(path: Path, spec: TableSpec) -> tuple[pl.DataFrame, list[str]]:
    """Read a hive-partitioned Parquet folder into one raw frame (not yet validated).

    Args:
        path: the folder (e.g. ``data/interactions``).
        spec: the table it holds; partition columns that are spec columns are kept.

    Returns:
        ``(frame, dropped)``: rows of every file in path order, and the partition columns
        dropped because they are not columns of ``spec``.

    Raises:
        DataError: no Parquet file under the folder, files whose schemas disagree, an
            unreadable file, or no rows.
    """
    files = partition_files(path)
    if not files:
        raise DataError("partition folder holds no .parquet files", path=str(path))
    keys = partition_keys(path, files)
    known = {c.name for c in spec.columns}
    dropped = [k for k in keys if k not in known]
    try:
        lazy = pl.scan_parquet(files, hive_partitioning=True, hive_schema=None)
        # Lazy: the dropped partition columns are never materialised.
        raw = lazy.drop(dropped).collect() if dropped else lazy.collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"partition files cannot be read as one table (mixed schemas?): {first}",
            path=str(path),
        ) from None
    if raw.height == 0:
        raise DataError("no rows", path=str(path))
    return raw, dropped


def write_partitioned(interactions: pl.DataFrame, dst: Path) -> tuple[Path, ...]:
    """Write interactions as ``dst/date=YYYY-MM-DD/part-0.parquet``, one folder per UTC day.

    Rows keep their order within a day, so a time-sorted table reads back identically.
    ``dst`` is replaced as a whole (written beside it, then renamed).

    Returns:
        The files written, in date order.

    Example:
        >>> import tempfile
        >>> inter = pl.DataFrame({"user_id": [1, 2], "item_id": [3, 4],
        ...     "timestamp": [0, 86_400], "event": ["click"] * 2, "value": [1.0] * 2})
        >>> [p.parent.name for p in write_partitioned(inter, Path(tempfile.mkdtemp()) / "i")]
        ['date=1970-01-01', 'date=1970-01-02']
    """
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    day = pl.from_epoch(pl.col("timestamp"), time_unit="s").dt.date().alias(PARTITION_KEY)
    keyed = interactions.with_columns(day)
    written: list[Path] = []
    for value in keyed[PARTITION_KEY].unique().sort().to_list():
        folder = tmp / f"{PARTITION_KEY}={value.isoformat()}"
        folder.mkdir(parents=True)
        part = keyed.filter(pl.col(PARTITION_KEY) == value).drop(PARTITION_KEY)
        part.write_parquet(folder / "part-0.parquet")
        written.append(dst / folder.name / "part-0.parquet")
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return tuple(written)

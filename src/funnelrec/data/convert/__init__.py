"""Converters from public dataset layouts to the canonical tables.

Each layout has one module with a ``read(src) -> RawTables`` function; this package dispatches
on the format name. :func:`read_format` returns the tables in memory (benchmarks use it) and
:func:`convert` writes them as canonical Parquet (``interactions.parquet``, ``items.parquet``,
``users.parquet``) that :func:`funnelrec.data.io.load_dataset_dir` reads back.

Formats: ``movielens-100k``, ``movielens-1m``, ``movielens-latest``, ``mind``, ``taobao``,
``kuairec``, ``kuairand``, ``ali-ccp``; see each module's docstring for the mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from funnelrec.data.convert import (
    ali_ccp,
    kuairand,
    kuairec,
    mind,
    movielens_1m,
    movielens_100k,
    movielens_latest,
    taobao,
)
from funnelrec.data.io import RawTables, write_tables
from funnelrec.data.validate import DropReport
from funnelrec.errors import ConfigError

_READERS: Mapping[str, Callable[[Path], RawTables]] = MappingProxyType(
    {
        movielens_100k.FORMAT: movielens_100k.read,
        movielens_1m.FORMAT: movielens_1m.read,
        movielens_latest.FORMAT: movielens_latest.read,
        mind.FORMAT: mind.read,
        taobao.FORMAT: taobao.read,
        kuairec.FORMAT: kuairec.read,
        kuairand.FORMAT: kuairand.read,
        ali_ccp.FORMAT: ali_ccp.read,
    }
)

FORMATS: tuple[str, ...] = tuple(_READERS)
"""Names accepted by :func:`convert` and :func:`read_format`."""


@dataclass(frozen=True, slots=True)
class ConversionReport:
    """What :func:`convert` wrote.

    Attributes:
        format: the source format name.
        src: the source folder.
        dst: the destination folder.
        rows: table name -> rows written.
        dropped: source file name -> {reason: records dropped}; files with no drop are absent.
        notes: facts about the conversion (synthesised timestamps, deduplication, ...).
        reports: the full :class:`~funnelrec.data.validate.DropReport` of every source file.
    """

    format: str
    src: str
    dst: str
    rows: dict[str, int]
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    reports: tuple[DropReport, ...] = ()

    def summary(self) -> str:
        """Human-readable multi-line summary (for the CLI or logs)."""
        lines = [f"{self.format}: {self.src} -> {self.dst}"]
        lines += [f"  {name}: {n:,} rows" for name, n in self.rows.items()]
        for source, reasons in self.dropped.items():
            detail = ", ".join(f"{reason}: {n:,}" for reason, n in reasons.items())
            lines.append(f"  dropped from {source}: {detail}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _reader(format_name: str) -> Callable[[Path], RawTables]:
    if format_name not in _READERS:
        raise ConfigError(
            f"unknown dataset format '{format_name}'; valid formats: {', '.join(FORMATS)}"
        )
    return _READERS[format_name]


def read_format(format_name: str, src: Path) -> RawTables:
    """Read a public dataset in its original layout into canonical tables, in memory.

    Args:
        format_name: one of :data:`FORMATS`.
        src: the folder holding the dataset's files.

    Returns:
        The canonical tables, drop reports and notes.

    Raises:
        ConfigError: ``format_name`` is unknown (a ``FunnelrecError``; the message lists the
            valid names).
        DataError: a source file is missing or malformed (the message names it).

    Example:
        >>> tables = read_format("movielens-100k", Path("../shared/data/movielens-100k"))
        >>> tables.interactions.height  # doctest: +SKIP
        100000
    """
    return _reader(format_name)(Path(src))


def convert(format_name: str, src: Path, dst: Path) -> ConversionReport:
    """Convert a public dataset to canonical Parquet files in ``dst``.

    Args:
        format_name: one of :data:`FORMATS`.
        src: the folder holding the dataset's files.
        dst: the output folder (created if needed); ``interactions.parquet`` and, when the
            format has them, ``items.parquet`` and ``users.parquet`` are (over)written.

    Returns:
        The :class:`ConversionReport` (rows per table, dropped records, notes).

    Raises:
        ConfigError: ``format_name`` is unknown.
        DataError: a source file is missing or malformed.
    """
    reader = _reader(format_name)
    tables = reader(Path(src))
    write_tables(tables, Path(dst))
    dropped = {Path(r.path).name: dict(r.dropped) for r in tables.reports if r.dropped}
    return ConversionReport(
        format=format_name,
        src=str(src),
        dst=str(dst),
        rows={name: df.height for name, df in tables.tables.items()},
        dropped=dropped,
        notes=tables.notes,
        reports=tables.reports,
    )


__all__ = ["FORMATS", "ConversionReport", "convert", "read_format"]

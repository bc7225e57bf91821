"""KuaiRand (Kuaishou short video with random exposures): exposure logs with click/watch labels.

Reads every ``log_*.csv`` (the official ``log_standard_*``/``log_random_*`` files) or, when
there is none, every ``kuairand*.csv`` (joined samples such as ``kuairand_sample.csv``), in
name order. Required columns: ``user_id``, ``video_id``, ``is_click``. Each exposure row
becomes:

* an ``"impression"`` event (``value`` = 1.0);
* a ``"click"`` event when ``is_click`` = 1, and ``"like"``/``"follow"``/``"comment"``/
  ``"forward"`` events for the official ``is_like``/``is_follow``/``is_comment``/
  ``is_forward`` flags when present (``is_hate`` is not turned into an event: every
  non-impression event counts as a positive downstream);
* a ``"watch"`` event with ``value`` = ``play_time_ms / duration_ms`` when both columns are
  present and ``duration_ms`` > 0 (rows with a zero duration get no watch event; the count is
  in the notes).

With both watch columns, every row of an exposure carries ``video_duration`` (``duration_ms``
in seconds; null when 0) and the watch row ``play_duration`` (``play_time_ms`` in seconds):
the canonical optional duration columns the watch-time objectives read (docs/data.md).

Time: ``time_ms`` (official logs, unix ms) is truncated to seconds, else a ``timestamp``
column (unix seconds or ISO) is used. Without either (the joined sample dropped them) the
timestamp is synthesised deterministically from row order, 0, 1, 2, ... seconds over the
files in name order, and the notes say so: only the order is meaningful then. The ``tab``
column, when present, becomes ``scenario``, and ``is_rand`` (1 = randomly exposed video) is
kept as an extra column. User and video feature files are not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from funnelrec.data.convert._common import require_columns, require_dir
from funnelrec.data.io import RawTables
from funnelrec.data.parse import RowOf
from funnelrec.data.text_table import read_text_table
from funnelrec.data.validate import DropReport, coerce_table
from funnelrec.errors import DataError
from funnelrec.schema import ColumnSpec, TableSpec

FORMAT = "kuairand"
LOG_PATTERNS: tuple[str, ...] = ("log_*.csv", "kuairand*.csv")
FLAG_EVENTS: dict[str, str] = {
    "is_click": "click",
    "is_like": "like",
    "is_follow": "follow",
    "is_comment": "comment",
    "is_forward": "forward",
}
"""0/1 flag column -> event emitted when it is 1."""


def read(src: Path) -> RawTables:
    """Read a KuaiRand folder into canonical interactions.

    Args:
        src: the folder holding the exposure logs, or one log file.

    Returns:
        Interactions only (no items/users tables); notes say when timestamps are synthetic.

    Raises:
        DataError: no log file, a missing column, or a malformed value.
    """
    folder = require_dir(src, FORMAT)
    paths: list[Path] = [Path(src)] if Path(src).is_file() else []
    for pattern in () if paths else LOG_PATTERNS:
        paths = sorted(p for p in folder.glob(pattern) if p.is_file())
        if paths:
            break
    if not paths:
        raise DataError(
            "no KuaiRand log file (expected log_*.csv or kuairand*.csv)", path=str(folder)
        )
    events, reports, notes = [], [], []
    offset = 0
    for path in paths:
        table, report, path_notes = _read_log(path, offset)
        offset += report.n_read
        events.append(table)
        reports.append(report)
        notes += path_notes
    inter = pl.concat(events, how="diagonal_relaxed")
    return RawTables(inter, None, None, tuple(reports), tuple(notes))


def _read_log(path: Path, offset: int) -> tuple[pl.DataFrame, DropReport, list[str]]:
    """One log file -> event rows, its drop report and notes; ``offset`` = rows before it."""
    raw, row_of = read_text_table(path)
    require_columns(raw, ("user_id", "video_id", "is_click"), path)
    time_col = next((c for c in ("time_ms", "timestamp") if c in raw.columns), None)
    source, report = _coerce_log(raw, path, row_of, time_col)
    notes = []
    if time_col is None:
        timestamp = pl.col("_line") + offset
        notes.append(
            f"{path.name} has no time column: timestamps synthesised from row order "
            "(row i -> i seconds); only their order is meaningful"
        )
    elif time_col == "time_ms":
        timestamp = pl.col("timestamp") // 1000
    else:
        timestamp = pl.col("timestamp")
    base = source.with_columns(timestamp.alias("timestamp"))
    extras = [c for c in ("scenario", "is_rand") if c in source.columns]
    durations: list[str] = []
    if "duration_ms" in source.columns:
        seconds = pl.when(pl.col("duration_ms") > 0).then(pl.col("duration_ms") / 1000.0)
        base = base.with_columns(seconds.cast(pl.Float64).alias("video_duration"))
        durations = ["video_duration"]
    parts = _flag_events(base, [*durations, *extras])
    if "play_time_ms" in source.columns:
        watched, n_skipped = _watch_events(base, [*durations, *extras])
        durations = ["play_duration", *durations]
        parts.append(watched)
        if n_skipped:
            notes.append(
                f"{path.name}: {n_skipped:,} exposures without a positive "
                "duration_ms or a play_time_ms get no watch event"
            )
    order = {"impression": 0, **{e: i + 1 for i, e in enumerate(FLAG_EVENTS.values())}}
    order["watch"] = len(order)
    inter = (
        pl.concat(parts, how="diagonal_relaxed")
        .sort(
            "timestamp",
            "_line",
            pl.col("event").replace_strict(order, return_dtype=pl.Int8),
            maintain_order=True,
        )
        .with_columns(pl.col("value").cast(pl.Float32))
        .select("user_id", "item_id", "timestamp", "event", "value", *durations, *extras)
    )
    return inter, report, notes


def _coerce_log(
    raw: pl.DataFrame, path: Path, row_of: RowOf, time_col: str | None
) -> tuple[pl.DataFrame, DropReport]:
    """The log's columns under canonical names, typed and checked (flags are 0/1), plus a
    ``_line`` column (0-based frame index) that keeps the file order and names rows in errors.
    The watch columns are kept only when both are present."""
    watch = "play_time_ms" in raw.columns and "duration_ms" in raw.columns
    flags = [c for c in FLAG_EVENTS if c in raw.columns]
    spec = TableSpec(
        "interactions",
        (
            ColumnSpec("user_id", "id"),
            ColumnSpec("item_id", "id"),
            ColumnSpec("timestamp", "int", required=time_col is not None),
            ColumnSpec("scenario", "str", required=False),
            ColumnSpec("play_time_ms", "float", required=False),
            ColumnSpec("duration_ms", "float", required=False),
            ColumnSpec("is_rand", "int", required=False),
            *(ColumnSpec(flag, "int", required=False) for flag in flags),
        ),
    )
    selected = [
        "user_id",
        pl.col("video_id").alias("item_id"),
        *([pl.col(time_col).alias("timestamp")] if time_col else []),
        *([pl.col("tab").alias("scenario")] if "tab" in raw.columns else []),
        *(["play_time_ms", "duration_ms"] if watch else []),
        *(["is_rand"] if "is_rand" in raw.columns else []),
        *flags,
        pl.int_range(raw.height, dtype=pl.Int64).alias("_line"),
    ]
    source, report = coerce_table(
        raw.select(selected),
        spec,
        path=str(path),
        row_of=row_of,
        header_row=1,
        defaults={},
        source_names={"item_id": "video_id", "timestamp": time_col or "-", "scenario": "tab"},
    )
    for flag in flags:
        bad = ~source[flag].is_in([0, 1]).fill_null(True)
        if bad.any():
            i = int(bad.arg_max() or 0)
            raise DataError(
                f"expected 0 or 1, found {source[flag][i]}",
                path=str(path),
                row=row_of(int(source["_line"][i])),
                column=flag,
            )
    return source, report


def _flag_events(base: pl.DataFrame, extras: Sequence[str]) -> list[pl.DataFrame]:
    """An impression per exposure, then one frame per flag of its event where the flag is 1."""
    keep = ["user_id", "item_id", "timestamp", "_line", *extras]
    parts = [base.select(keep).with_columns(event=pl.lit("impression"), value=pl.lit(1.0))]
    for flag, event in FLAG_EVENTS.items():
        if flag in base.columns:
            parts.append(
                base.filter(pl.col(flag) == 1)
                .select(keep)
                .with_columns(event=pl.lit(event), value=pl.lit(1.0))
            )
    return parts


def _watch_events(base: pl.DataFrame, extras: Sequence[str]) -> tuple[pl.DataFrame, int]:
    """``watch`` events valued ``play_time_ms / duration_ms`` and the number of exposures left
    without one (no positive duration or no play time)."""
    keep = ["user_id", "item_id", "timestamp", "_line", *extras]
    ok = (pl.col("duration_ms") > 0) & pl.col("play_time_ms").is_not_null()
    watched = base.filter(ok.fill_null(False))
    events = watched.select(keep).with_columns(
        event=pl.lit("watch"),
        value=watched["play_time_ms"] / watched["duration_ms"],
        play_duration=(watched["play_time_ms"] / 1000.0).cast(pl.Float64),
    )
    return events, base.height - watched.height

"""KuaiRec 2.0 (Kuaishou short video): ``big_matrix.csv`` / ``small_matrix.csv`` and side files.

A matrix file (``user_id, video_id, play_duration, video_duration, time, date, timestamp,
watch_ratio``; UTF-8 with a BOM) becomes ``"watch"`` events with ``value`` = ``watch_ratio``
(play time / video length; above 1 for replays) and ``timestamp`` = the float unix time
truncated to seconds; ``play_duration`` and ``video_duration`` (ms in the source) become the
canonical optional columns of the same names, in seconds (float).
Rows without a timestamp or watch ratio (the official big matrix has some) are dropped and
counted. Files matching ``big_matrix*.csv`` and ``small_matrix*.csv`` are read; when both are
present they are concatenated with a ``matrix`` column (``"big"``/``"small"``): the small
matrix is the fully observed one, usually kept for evaluation.

Optional side files:

* ``item_categories*.csv`` (``video_id, feat`` with ``feat`` like ``[27, 9]``) -> items with
  ``category`` = the first tag id and ``tags`` = all tag ids ``|``-joined;
* ``user_features*.csv`` -> users, every column kept.

Every watch event counts as a positive in ``Dataset.positives``; judge engagement by
``value`` (e.g. watch_ratio >= 2 as in the KuaiRec paper) when that matters.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from funnelrec.data.convert._common import find_one, require_columns, require_dir
from funnelrec.data.io import RawTables
from funnelrec.data.text_table import read_text_table
from funnelrec.data.validate import DropReport, coerce_table
from funnelrec.errors import DataError
from funnelrec.schema import INTERACTIONS, ITEMS, USERS

FORMAT = "kuairec"
DURATION_COLUMNS = ("play_duration", "video_duration")
MATRICES: tuple[tuple[str, str], ...] = (("big", "big_matrix*.csv"), ("small", "small_matrix*.csv"))


def read(src: Path) -> RawTables:
    """Read a KuaiRec ``data`` folder into canonical tables.

    Args:
        src: the folder holding ``big_matrix.csv`` and/or ``small_matrix.csv`` (or head samples
            such as ``big_matrix_1000.csv``) and optionally the side files; or one matrix file,
            read with the side files beside it.

    Returns:
        Interactions, items when a categories file exists, users when a features file exists.

    Raises:
        DataError: no matrix file, two candidates for one file, or a malformed file.
    """
    folder = require_dir(src, FORMAT)
    found: list[tuple[str, Path | None]]
    if Path(src).is_file():
        found = [("small" if Path(src).name.startswith("small") else "big", Path(src))]
    else:
        found = [(kind, find_one(folder, (p,), f"{kind} matrix")) for kind, p in MATRICES]
    matrices = [(kind, path) for kind, path in found if path is not None]
    if not matrices:
        raise DataError(
            "no KuaiRec matrix file (expected big_matrix.csv or small_matrix.csv)", path=str(folder)
        )
    parts, reports = [], []
    for kind, path in matrices:
        table, report = _read_matrix(path)
        if len(matrices) > 1:
            table = table.with_columns(pl.lit(kind).alias("matrix"))
        parts.append(table)
        reports.append(report)
    inter = pl.concat(parts, how="diagonal_relaxed")

    items = None
    cat_path = find_one(folder, ("item_categories*.csv",), "item categories")
    if cat_path is not None:
        raw, row_of = read_text_table(cat_path)
        require_columns(raw, ("video_id", "feat"), cat_path)
        tags = raw["feat"].str.extract_all(r"-?\d+")
        items, report = coerce_table(
            raw.select(
                pl.col("video_id").alias("item_id"),
                tags.list.first().alias("category"),
                tags.list.join("|").replace("", None).alias("tags"),
            ),
            ITEMS,
            path=str(cat_path),
            row_of=row_of,
            header_row=1,
            source_names={"item_id": "video_id"},
        )
        reports.append(report)

    users = None
    user_path = find_one(folder, ("user_features*.csv",), "user features")
    if user_path is not None:
        raw, row_of = read_text_table(user_path)
        users, report = coerce_table(raw, USERS, path=str(user_path), row_of=row_of, header_row=1)
        reports.append(report)
    notes: tuple[str, ...] = ()
    if len(matrices) > 1:
        notes = ("big and small matrices concatenated; the 'matrix' column tells them apart",)
    return RawTables(inter, items, users, tuple(reports), notes)


def _read_matrix(path: Path) -> tuple[pl.DataFrame, DropReport]:
    raw, row_of = read_text_table(path)
    require_columns(raw, ("user_id", "video_id", "timestamp", "watch_ratio"), path)
    extras = [c for c in DURATION_COLUMNS if c in raw.columns]
    table, report = coerce_table(
        raw.select(
            "user_id",
            pl.col("video_id").alias("item_id"),
            "timestamp",
            pl.lit("watch").alias("event"),
            pl.col("watch_ratio").alias("value"),
            *extras,
        ),
        INTERACTIONS,
        path=str(path),
        row_of=row_of,
        header_row=1,
        defaults={},
        source_names={"item_id": "video_id", "value": "watch_ratio"},
    )
    # The source counts milliseconds; the canonical columns are seconds.
    return table.with_columns(
        (pl.col(c).cast(pl.Float64) / 1000.0).alias(c) for c in extras
    ), report

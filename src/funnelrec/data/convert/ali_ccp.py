"""Ali-CCP (Alibaba click and conversion prediction, Tianchi dataset 408; the ESMM paper's data)
as preprocessed by torch-rechub: ``ali_ccp_{train,val,test}[_sample].csv``.

Each file has a header: the labels ``click`` and ``purchase`` (0/1), then one column per
categorical feature field named by its Ali-CCP field id (values already re-encoded as
integers), then dense ``D*`` columns. Field meanings, from the Tianchi dataset page's feature
table (as quoted in public code using the dataset) and torch-rechub's examples:

* ``101`` user id; ``121`` user profile category id, ``122`` profile group id, ``124`` gender
  id, ``125`` age id, ``126``/``127`` consumption level I/II, ``128`` occupation (working or
  not), ``129`` geography;
* ``205`` item id, ``206`` the item's category id (``207`` shop, ``210`` intention node,
  ``216`` brand, the ``508``/``509``/``702``/``853`` user x item crosses and the
  ``109_14``/``110_14``/``127_14``/``150_14`` behaviour fields are not read);
* ``301`` "a categorical expression of position", 3 values in the full data; torch-rechub's
  multi-domain ranking examples use it as the domain indicator, so it is the scenario here.

Required columns: ``click``, ``purchase``, ``101``, ``205``. Each row is one exposure and
becomes an ``"impression"`` event, a ``"click"`` event when ``click`` = 1 and an ``"order"``
event (the conversion the ``order`` task labels, rank/labels.py) when ``purchase`` = 1, each
with ``value`` = 1.0; a flag other than 0/1 is an error, a row without a user, item or label is
dropped and counted. ESMM's conversions follow a click; a purchase without one is kept and
counted in the notes. ``301``, when present, becomes ``scenario`` (as text).

Time: the files have none. Timestamps are synthesised from row order, 0, 1, 2, ... seconds over
the files in the order train, val, test (as kuairand does for its joined sample), so the
official split is a temporal one; the notes give each file's range. Only the order is
meaningful.

Items: ``item_id`` and ``category`` (``206``) when present, first value per item (items seen
with several are counted in the notes). Users: ``user_id`` and the profile fields present, as
text under the canonical attribute names where one fits (``124`` -> ``gender``, ``125`` ->
``age``, ``128`` -> ``occupation``, ``129`` -> ``region``: text, so that the encoded age id is
not bucketed as years) and descriptive names otherwise; first value per user, conflicts
counted in the notes. Dense ``D*`` columns (the numeric values of the behaviour and cross
fields) are not read: they describe a user x item pair, not a user or an item.

The shared sample (torch-rechub's ``*_sample.csv``: train 100 rows with 7 clicks and 1
purchase, val 50 with 3 and 1, test 50 with 2 and 1) has one user id (``101`` = 1) and one
scenario (``301`` = 1), and item id 0 stands for 79 of its 200 rows with 26 categories
(apparently a catch-all id of the re-encoding; kept as it is, the notes name it).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from funnelrec.data.convert._common import check_values, find_one, require_columns, require_dir
from funnelrec.data.io import RawTables
from funnelrec.data.text_table import read_text_table
from funnelrec.data.validate import DropReport, coerce_table
from funnelrec.errors import DataError
from funnelrec.schema import ColumnSpec, TableSpec

FORMAT = "ali-ccp"
SPLITS: tuple[str, ...] = ("train", "val", "test")
"""File order, which is also the order of the synthesised timestamps."""

FLAG_EVENTS: dict[str, str] = {"click": "click", "purchase": "order"}
"""0/1 label column -> event emitted when it is 1 (after the exposure's impression)."""

USER_FIELDS: dict[str, str] = {
    "121": "profile",
    "122": "profile_group",
    "124": "gender",
    "125": "age",
    "126": "consumption_level_1",
    "127": "consumption_level_2",
    "128": "occupation",
    "129": "region",
}
"""Ali-CCP user profile field id -> users column."""

_RENAMES: dict[str, str] = {
    "101": "user_id",
    "205": "item_id",
    "301": "scenario",
    "206": "category",
}
_SOURCE_NAMES: dict[str, str] = {
    **{v: k for k, v in _RENAMES.items()},
    **{v: k for k, v in USER_FIELDS.items()},
}
_EVENT_ORDER: dict[str, int] = {"impression": 0, "click": 1, "order": 2}


def read(src: Path) -> RawTables:
    """Read an Ali-CCP folder (torch-rechub's preprocessed CSVs) into canonical tables.

    Args:
        src: the folder holding ``ali_ccp_train*.csv``, ``ali_ccp_val*.csv`` and
            ``ali_ccp_test*.csv`` (any of them), or one such file.

    Returns:
        Interactions, items (when ``206`` is present) and users (when a profile field is);
        notes on the synthesised timestamps and any conflicting attributes.

    Raises:
        DataError: no Ali-CCP file, two candidates for one split, a missing column, or a
            malformed value (named with file, row and column).
    """
    folder = require_dir(src, FORMAT)
    paths = [Path(src)] if Path(src).is_file() else _split_files(folder)
    if not paths:
        raise DataError(
            "no Ali-CCP file (expected ali_ccp_train*.csv, ali_ccp_val*.csv or ali_ccp_test*.csv)",
            path=str(folder),
        )
    frames, reports, notes = [], [], []
    offset = 0
    for path in paths:
        frame, report = _read_file(path, offset)
        notes.append(
            f"{path.name} has no time column: timestamps synthesised from row order "
            f"({offset}..{offset + report.n_read - 1} s); only their order is meaningful"
        )
        offset += report.n_read
        frames.append(frame)
        reports.append(report)
    source = pl.concat(frames, how="diagonal_relaxed")
    orphans = int(((source["purchase"] == 1) & (source["click"] == 0)).sum())
    if orphans:
        notes.append(f"{orphans:,} purchases without a click on the same exposure; kept")
    items, item_notes = _first_per_key(source, "item_id", ["category"], "category")
    users, user_notes = _first_per_key(
        source, "user_id", list(USER_FIELDS.values()), "profile fields"
    )
    return RawTables(
        _events(source), items, users, tuple(reports), (*notes, *item_notes, *user_notes)
    )


def _split_files(folder: Path) -> list[Path]:
    """The split files present, in :data:`SPLITS` order (the full or the sample files)."""
    found = (
        find_one(folder, (f"ali_ccp_{split}.csv", f"ali_ccp_{split}_*.csv"), f"Ali-CCP {split}")
        for split in SPLITS
    )
    return [path for path in found if path is not None]


def _read_file(path: Path, offset: int) -> tuple[pl.DataFrame, DropReport]:
    """One file -> typed exposures (canonical names, flags checked, ``timestamp`` = ``offset``
    + frame index) and its drop report."""
    raw, row_of = read_text_table(path)
    require_columns(raw, (*FLAG_EVENTS, "101", "205"), path)
    for flag in FLAG_EVENTS:
        check_values(raw[flag].str.strip_chars(), ("0", "1"), path=path, row_of=row_of)
    texts = [k for k in ("301", *USER_FIELDS) if k in raw.columns]
    names = {**_RENAMES, **USER_FIELDS}
    spec = TableSpec(
        "interactions",
        (
            ColumnSpec("user_id", "id"),
            ColumnSpec("item_id", "id"),
            *(ColumnSpec(flag, "int") for flag in FLAG_EVENTS),
            ColumnSpec("scenario", "str", required=False),
            ColumnSpec("category", "any", required=False),
            *(ColumnSpec(name, "str", required=False) for name in USER_FIELDS.values()),
        ),
    )
    selected = [
        pl.col("101").alias("user_id"),
        pl.col("205").alias("item_id"),
        *FLAG_EVENTS,
        *(pl.col(k).str.strip_chars().alias(names[k]) for k in texts),
        *([pl.col("206").alias("category")] if "206" in raw.columns else []),
        pl.int_range(raw.height, dtype=pl.Int64).alias("_line"),
    ]
    source, report = coerce_table(
        raw.select(selected),
        spec,
        path=str(path),
        row_of=row_of,
        header_row=1,
        defaults={},
        source_names=_SOURCE_NAMES,
    )
    return source.with_columns((pl.col("_line") + offset).alias("timestamp")), report


def _events(source: pl.DataFrame) -> pl.DataFrame:
    """An impression per exposure, then its click and order events, in exposure order."""
    extras = ["scenario"] if "scenario" in source.columns else []
    keep = ["user_id", "item_id", "timestamp", *extras]
    parts = [source.select(keep).with_columns(event=pl.lit("impression"))]
    parts += [
        source.filter(pl.col(flag) == 1).select(keep).with_columns(event=pl.lit(event))
        for flag, event in FLAG_EVENTS.items()
    ]
    return (
        pl.concat(parts)
        .sort(
            "timestamp",
            pl.col("event").replace_strict(_EVENT_ORDER, return_dtype=pl.Int8),
            maintain_order=True,
        )
        .with_columns(value=pl.lit(1.0, dtype=pl.Float32))
        .select("user_id", "item_id", "timestamp", "event", "value", *extras)
    )


def _first_per_key(
    source: pl.DataFrame, key: str, columns: list[str], what: str
) -> tuple[pl.DataFrame | None, list[str]]:
    """One row per ``key`` with the first value of each of ``columns`` present (None when
    none is), and a note counting keys seen with different values (the first is kept) that
    names the key with the most variants."""
    present = [c for c in columns if c in source.columns]
    if not present:
        return None, []
    rows = source.select(key, *present)
    table = rows.unique(key, keep="first", maintain_order=True)
    variants = rows.unique().group_by(key).len().filter(pl.col("len") > 1).sort("len")
    if variants.is_empty():
        return table, []
    # naming the worst key shows whether it is one catch-all id (e.g. a re-encoded "rare")
    worst, n_values = variants.row(-1)
    return table, [
        f"{variants.height:,} {key}s seen with different {what} (most: {key} {worst}, "
        f"{n_values} variants over {int((rows[key] == worst).sum()):,} rows); kept the first"
    ]

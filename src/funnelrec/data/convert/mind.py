"""MIND (Microsoft News Dataset): ``behaviors.tsv`` and ``news.tsv``, tab-separated, no header.

``behaviors.tsv`` lines are ``impression_id, user_id, time, history, impressions`` with
``time`` like ``11/12/2019 2:14:46 PM`` (no time zone is given; read as UTC), ``history`` the
space-separated news the user clicked before the logging period, and ``impressions`` the
space-separated ``news_id-label`` pairs shown (label 1 = clicked; the test split has no
labels). Interactions produced:

* one ``"impression"`` event per shown news, with ``session_id`` = the impression id and
  ``position`` = its 0-based place in the list;
* one ``"click"`` event per clicked news (same ``session_id``, ``position``, timestamp);
* one ``"click"`` event per history news. MIND gives no time for history clicks: each is
  stamped one second before the user's earliest impression that lists it, and history is
  deduplicated per user (a user's history is repeated on every impression line and may list
  a news twice). Within that timestamp the rows keep the history's order, which sorting by
  time preserves when the sort is stable. These rows have no ``session_id``/``position``.

``news.tsv`` (``news_id, category, subcategory, title, abstract, url, entities...``) -> items:
``category``, ``subcategory``, ``title``, ``abstract`` and ``created_at`` = null (MIND has no
publication time). News and user ids stay text (``N1234``, ``U5678``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from funnelrec.data.convert._common import (
    parse_datetime_format,
    require_dir,
    require_file,
)
from funnelrec.data.io import RawTables
from funnelrec.data.parse import RowOf
from funnelrec.data.text_table import read_text_table
from funnelrec.data.validate import DropReport, coerce_table
from funnelrec.errors import DataError, quoted
from funnelrec.schema import ITEMS, ColumnSpec, TableSpec

FORMAT = "mind"
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"

BEHAVIORS = TableSpec(
    "interactions",
    (
        ColumnSpec("session_id", "id"),
        ColumnSpec("user_id", "id"),
        ColumnSpec("timestamp", "int"),
        ColumnSpec("impressions", "str"),
        ColumnSpec("history", "str", required=False),
    ),
)
"""``behaviors.tsv`` as a source table: a line without user, time or impressions is dropped."""

_TOKEN = r"\S+"
_LABEL = r"-([01])$"


def read(src: Path) -> RawTables:
    """Read a MIND folder (``MINDsmall_train``, ``MINDlarge_dev``, ...) into canonical tables.

    Args:
        src: the folder holding ``behaviors.tsv`` and ``news.tsv`` (or one of them).

    Returns:
        Interactions (impressions, clicks, history clicks) sorted by time, and items.

    Raises:
        DataError: a file is missing or a line is malformed (named with row and column).
    """
    folder = require_dir(src, FORMAT)
    inter, report, notes = _read_behaviors(require_file(folder, "behaviors.tsv", FORMAT))
    items, items_report = _read_news(require_file(folder, "news.tsv", FORMAT))
    return RawTables(inter, items, None, (report, items_report), notes)


def _read_behaviors(path: Path) -> tuple[pl.DataFrame, DropReport, tuple[str, ...]]:
    """``behaviors.tsv`` -> interactions sorted by time, its drop report and the notes."""
    raw, row_of = read_text_table(
        path,
        separator="\t",
        columns=("impression_id", "user_id", "time", "history", "impressions"),
        quote_char=None,
    )
    beh, report = coerce_table(
        raw.select(
            pl.col("impression_id").alias("session_id"),
            "user_id",
            parse_datetime_format(raw["time"], TIME_FORMAT, path=path, row_of=row_of).alias(
                "timestamp"
            ),
            "impressions",
            "history",
            pl.int_range(raw.height, dtype=pl.Int64).alias("_line"),
        ),
        BEHAVIORS,
        path=str(path),
        row_of=row_of,
        source_names={"session_id": "impression_id", "timestamp": "time"},
    )
    shown = _impressions(beh, path=path, row_of=row_of)
    history = _history(beh)
    inter = (
        pl.concat([history, shown], how="diagonal_relaxed")
        .sort("timestamp", "_line", "_order", maintain_order=True)
        .drop("_line", "_order")
        .with_columns(pl.lit(1.0, dtype=pl.Float32).alias("value"))
        .select("user_id", "item_id", "timestamp", "event", "value", "session_id", "position")
    )
    n_hist_raw = int(beh["history"].str.count_matches(_TOKEN).sum() or 0)
    notes = (
        f"history clicks have no time in MIND: {history.height:,} deduplicated history clicks "
        f"(of {n_hist_raw:,} listed) are stamped 1 s before the user's first impression",
    )
    return inter, report, notes


def _read_news(path: Path) -> tuple[pl.DataFrame, DropReport]:
    """``news.tsv`` -> the items table (no publication time: ``created_at`` is null)."""
    raw, row_of = read_text_table(
        path,
        separator="\t",
        columns=(
            "item_id",
            "category",
            "subcategory",
            "title",
            "abstract",
            "url",
            "title_entities",
            "abstract_entities",
        ),
        quote_char=None,
    )
    return coerce_table(
        raw.select(
            "item_id",
            "category",
            "subcategory",
            "title",
            "abstract",
            pl.lit(None, dtype=pl.Int64).alias("created_at"),
        ),
        ITEMS,
        path=str(path),
        row_of=row_of,
        source_names={"item_id": "news_id"},
    )


def _impressions(beh: pl.DataFrame, *, path: Path, row_of: RowOf) -> pl.DataFrame:
    """One ``impression`` row per shown news plus one ``click`` row per clicked one."""
    tokens = beh.select(
        "user_id",
        "timestamp",
        "session_id",
        "_line",
        pl.col("impressions").str.extract_all(_TOKEN).alias("token"),
    ).with_columns(pl.int_ranges(pl.col("token").list.len()).alias("position"))
    tokens = tokens.explode("token", "position").drop_nulls("token")
    label = tokens["token"].str.extract(_LABEL, 1)
    bad = tokens["token"].str.contains("-") & label.is_null()
    if bad.any():
        i = int(bad.arg_max() or 0)
        raise DataError(
            f"impression {quoted(tokens['token'][i])} is not 'news_id-0' or 'news_id-1'",
            path=str(path),
            row=row_of(int(tokens["_line"][i])),
            column="impressions",
        )
    shown = tokens.select(
        "user_id",
        pl.col("token").str.replace(_LABEL, "").alias("item_id"),
        "timestamp",
        "session_id",
        "position",
        "_line",
        pl.lit("impression").alias("event"),
        pl.lit(1, dtype=pl.Int8).alias("_order"),
    )
    clicks = shown.filter(label == "1").with_columns(
        pl.lit("click").alias("event"), pl.lit(2, dtype=pl.Int8).alias("_order")
    )
    return pl.concat([shown, clicks]).with_columns(pl.col("position").cast(pl.Int64))


def _history(beh: pl.DataFrame) -> pl.DataFrame:
    """History clicks, one per (user, news), 1 s before the first impression listing them."""
    hist = (
        beh.select(
            "user_id",
            "timestamp",
            "_line",
            pl.col("history").str.extract_all(_TOKEN).alias("item_id"),
        )
        .with_columns(pl.int_ranges(pl.col("item_id").list.len()).alias("_pos"))
        .explode("item_id", "_pos")
        .drop_nulls("item_id")
        .sort("timestamp", "_line", "_pos", maintain_order=True)
        .unique(["user_id", "item_id"], keep="first", maintain_order=True)
    )
    return hist.select(
        "user_id",
        "item_id",
        (pl.col("timestamp") - 1).alias("timestamp"),
        "_line",
        pl.lit("click").alias("event"),
        pl.lit(0, dtype=pl.Int8).alias("_order"),
    )

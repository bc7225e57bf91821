"""MovieLens "latest" / 20M / 25M / 32M layout: ``ratings.csv`` and ``movies.csv`` (UTF-8, headers).

* ``ratings.csv`` (``userId,movieId,rating,timestamp``) -> interactions with
  ``event="rating"`` and ``value`` = the 0.5-5 rating.
* ``movies.csv`` (``movieId,title,genres``) -> items: ``title``, ``category`` (first genre),
  ``genres`` (``|``-joined as given) and ``year`` (from the title); ``(no genres listed)``
  becomes null. There are no user attributes and no release dates. ``tags.csv`` and
  ``links.csv`` are not read.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from funnelrec.data.convert._common import require_columns, require_dir, require_file
from funnelrec.data.convert.movielens_100k import YEAR_PATTERN
from funnelrec.data.io import RawTables
from funnelrec.data.text_table import read_text_table
from funnelrec.data.validate import coerce_table
from funnelrec.schema import INTERACTIONS, ITEMS

FORMAT = "movielens-latest"
NO_GENRES = "(no genres listed)"


def read(src: Path) -> RawTables:
    """Read a MovieLens folder in the CSV layout (ml-latest, ml-latest-small, ml-20m, ...).

    Args:
        src: the folder holding ``ratings.csv`` and ``movies.csv`` (or one of them).

    Returns:
        Interactions and items (no users table).

    Raises:
        DataError: a file or column is missing, or a value is malformed.
    """
    folder = require_dir(src, FORMAT)
    path = require_file(folder, "ratings.csv", FORMAT)
    raw, row_of = read_text_table(path)
    require_columns(raw, ("userId", "movieId", "rating", "timestamp"), path)
    inter, inter_report = coerce_table(
        raw.select(
            pl.col("userId").alias("user_id"),
            pl.col("movieId").alias("item_id"),
            "timestamp",
            pl.lit("rating").alias("event"),
            pl.col("rating").alias("value"),
        ),
        INTERACTIONS,
        path=str(path),
        row_of=row_of,
        header_row=1,
        source_names={"user_id": "userId", "item_id": "movieId", "value": "rating"},
    )

    path = require_file(folder, "movies.csv", FORMAT)
    raw, row_of = read_text_table(path)
    require_columns(raw, ("movieId", "title", "genres"), path)
    genres = pl.when(pl.col("genres") != NO_GENRES).then(pl.col("genres"))
    items, items_report = coerce_table(
        raw.select(
            pl.col("movieId").alias("item_id"),
            pl.col("title"),
            genres.str.split("|").list.first().alias("category"),
            genres.alias("genres"),
            pl.col("title")
            .str.strip_chars()
            .str.extract(YEAR_PATTERN, 1)
            .cast(pl.Int64)
            .alias("year"),
        ),
        ITEMS,
        path=str(path),
        row_of=row_of,
        header_row=1,
        source_names={"item_id": "movieId"},
    )
    return RawTables(inter, items, None, (inter_report, items_report))

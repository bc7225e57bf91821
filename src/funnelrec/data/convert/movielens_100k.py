"""MovieLens 100K (``ml-100k``): ``u.data``, ``u.user``, ``u.item``.

* ``u.data`` (tab-separated ``user item rating unix_ts``) -> interactions with
  ``event="rating"`` and ``value`` = the 1-5 rating.
* ``u.user`` (``id|age|gender|occupation|zip``) -> users: ``age``, ``gender``, ``occupation``,
  ``region`` (the zip code, as text: some are Canadian postcodes).
* ``u.item`` (``id|title|release date|video release date|IMDb URL|19 genre flags``, latin-1)
  -> items: ``title``, ``category`` (the first genre flagged, in u.genre order), ``genres``
  (every flagged genre, ``|``-joined), ``year`` (from the title) and ``created_at`` (the
  release date, midnight UTC; null where missing, as for item 267).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from funnelrec.data.convert._common import (
    parse_datetime_format,
    require_dir,
    require_file,
    sniff_encoding,
)
from funnelrec.data.io import RawTables
from funnelrec.data.text_table import read_text_table
from funnelrec.data.validate import DropReport, coerce_table
from funnelrec.schema import INTERACTIONS, ITEMS, USERS

FORMAT = "movielens-100k"

GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The 19 genre flag columns of ``u.item``, in file order (as listed in ``u.genre``)."""

YEAR_PATTERN = r"\((\d{4})\)\s*$"
"""Release year at the end of a MovieLens title, e.g. ``Toy Story (1995)``."""


def read_ratings(path: Path, separator: str) -> tuple[pl.DataFrame, DropReport]:
    """A headerless ``user, item, rating, timestamp`` file (``u.data``, ``ratings.dat``) ->
    interactions with ``event="rating"`` and ``value`` = the rating, plus the drop report."""
    raw, row_of = read_text_table(
        path,
        separator=separator,
        columns=("user_id", "item_id", "rating", "timestamp"),
        quote_char=None,
    )
    return coerce_table(
        raw.select(
            "user_id",
            "item_id",
            "timestamp",
            pl.lit("rating").alias("event"),
            pl.col("rating").alias("value"),
        ),
        INTERACTIONS,
        path=str(path),
        row_of=row_of,
        source_names={"value": "rating"},
    )


def read(src: Path) -> RawTables:
    """Read an ``ml-100k`` folder into canonical tables.

    Args:
        src: the folder holding ``u.data``, ``u.user`` and ``u.item`` (or one of them).

    Returns:
        Interactions (100,000 ratings for the official data), users and items.

    Raises:
        DataError: a file is missing or malformed (named with row and column).
    """
    folder = require_dir(src, FORMAT)
    inter, inter_report = read_ratings(require_file(folder, "u.data", FORMAT), "\t")

    user_path = require_file(folder, "u.user", FORMAT)
    raw, row_of = read_text_table(
        user_path,
        separator="|",
        columns=("user_id", "age", "gender", "occupation", "region"),
        quote_char=None,
    )
    users, users_report = coerce_table(
        raw.with_columns(pl.col("region").str.strip_chars()),
        USERS,
        path=str(user_path),
        row_of=row_of,
    )

    items, items_report = read_items(require_file(folder, "u.item", FORMAT))
    return RawTables(inter, items, users, (inter_report, items_report, users_report))


def read_items(path: Path) -> tuple[pl.DataFrame, DropReport]:
    """Read ``u.item`` (latin-1) into the items table; see the module docstring."""
    from funnelrec.data.convert._common import ones

    columns = ("item_id", "title", "release_date", "video_release_date", "url", *GENRES)
    raw, row_of = read_text_table(
        path, separator="|", columns=columns, quote_char=None, encoding=sniff_encoding(path)
    )
    flags = [ones(raw[g], path=path, row_of=row_of).alias(g) for g in GENRES]
    flagged = pl.DataFrame(flags).select(
        pl.concat_list([pl.when(pl.col(g)).then(pl.lit(g)) for g in GENRES])
        .list.drop_nulls()
        .alias("genre_list")
    )["genre_list"]
    items = raw.select(
        "item_id",
        "title",
        pl.Series(
            "created_at",
            parse_datetime_format(
                raw["release_date"], "%d-%b-%Y", path=path, row_of=row_of, date=True
            ),
        ),
        pl.Series("category", flagged.list.first()),
        pl.Series("genres", flagged.list.join("|")).replace("", None),
        pl.col("title").str.extract(YEAR_PATTERN, 1).cast(pl.Int64).alias("year"),
    )
    return coerce_table(items, ITEMS, path=str(path), row_of=row_of)

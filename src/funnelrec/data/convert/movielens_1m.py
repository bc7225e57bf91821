"""MovieLens 1M (``ml-1m``): ``ratings.dat``, ``users.dat``, ``movies.dat``.

All three are ``::``-separated without a header; ``movies.dat`` is latin-1 (any file that is
not valid UTF-8 is read as latin-1).

* ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) -> interactions with
  ``event="rating"`` and ``value`` = the 1-5 rating.
* ``users.dat`` (``UserID::Gender::Age::Occupation::Zip-code``) -> users: ``gender``, ``age``
  (the dataset's age-group code: 1 = under 18, 18, 25, 35, 45, 50, 56 = 56+), ``occupation``
  (the code mapped to its name from the ml-1m README; unknown codes kept as text) and
  ``region`` (the zip code, as text).
* ``movies.dat`` (``MovieID::Title::Genres``) -> items: ``title``, ``category`` (the first
  genre listed), ``genres`` (as given, ``|``-joined) and ``year`` (from the title). The data
  has no release dates, so there is no ``created_at``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from funnelrec.data.convert._common import require_dir, require_file, sniff_encoding
from funnelrec.data.convert.movielens_100k import YEAR_PATTERN, read_ratings
from funnelrec.data.io import RawTables
from funnelrec.data.text_table import read_text_table
from funnelrec.data.validate import coerce_table
from funnelrec.schema import ITEMS, USERS

FORMAT = "movielens-1m"

OCCUPATIONS: dict[str, str] = {
    "0": "other", "1": "academic/educator", "2": "artist", "3": "clerical/admin",
    "4": "college/grad student", "5": "customer service", "6": "doctor/health care",
    "7": "executive/managerial", "8": "farmer", "9": "homemaker", "10": "K-12 student",
    "11": "lawyer", "12": "programmer", "13": "retired", "14": "sales/marketing",
    "15": "scientist", "16": "self-employed", "17": "technician/engineer",
    "18": "tradesman/craftsman", "19": "unemployed", "20": "writer",
}  # fmt: skip
"""Occupation codes of ``users.dat`` (from the ml-1m README)."""


def read(src: Path) -> RawTables:
    """Read an ``ml-1m`` folder into canonical tables.

    Args:
        src: the folder holding ``ratings.dat``, ``users.dat`` and ``movies.dat`` (or one
            of them).

    Returns:
        Interactions (1,000,209 ratings for the official data), users and items.

    Raises:
        DataError: a file is missing or malformed (named with row and column).
    """
    folder = require_dir(src, FORMAT)
    inter, inter_report = read_ratings(require_file(folder, "ratings.dat", FORMAT), "::")

    path = require_file(folder, "users.dat", FORMAT)
    raw, row_of = read_text_table(
        path,
        separator="::",
        columns=("user_id", "gender", "age", "occupation", "region"),
        quote_char=None,
        encoding=sniff_encoding(path),
    )
    users, users_report = coerce_table(
        raw.with_columns(
            pl.col("occupation").str.strip_chars().replace(OCCUPATIONS),
            pl.col("region").str.strip_chars(),
        ),
        USERS,
        path=str(path),
        row_of=row_of,
    )

    path = require_file(folder, "movies.dat", FORMAT)
    raw, row_of = read_text_table(
        path,
        separator="::",
        columns=("item_id", "title", "genres"),
        quote_char=None,
        encoding=sniff_encoding(path),
    )
    items, items_report = coerce_table(
        raw.with_columns(
            pl.col("genres").str.split("|").list.first().alias("category"),
            pl.col("title").str.extract(YEAR_PATTERN, 1).cast(pl.Int64).alias("year"),
        ),
        ITEMS,
        path=str(path),
        row_of=row_of,
        source_names={"item_id": "movie_id"},
    )
    return RawTables(inter, items, users, (inter_report, items_report, users_report))

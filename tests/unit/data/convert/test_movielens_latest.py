"""MovieLens CSV layout (ml-latest, ml-20m, ...): ratings.csv and movies.csv with headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelrec.data.convert import read_format
from funnelrec.errors import DataError


def make(folder: Path) -> Path:
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,3,0.5,964982224\n"
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children\n"
        '3,"American President, The (1995) ",Comedy|Drama|Romance\n'
        "5,Some Film,(no genres listed)\n"
    )
    return folder


def test_ratings(tmp_path: Path) -> None:
    t = read_format("movielens-latest", make(tmp_path))
    assert t.interactions["value"].to_list() == [4.0, 4.5, 0.5]
    assert t.interactions["item_id"].to_list() == [1, 3, 3]
    assert t.users is None


def test_movies(tmp_path: Path) -> None:
    items = read_format("movielens-latest", make(tmp_path)).items
    assert items is not None
    rows = {r["item_id"]: r for r in items.iter_rows(named=True)}
    assert rows[1]["category"] == "Adventure"
    assert rows[3]["title"] == "American President, The (1995) "
    assert rows[3]["year"] == 1995
    assert rows[5]["category"] is None and rows[5]["genres"] is None and rows[5]["year"] is None


def test_missing_column(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "ratings.csv").write_text("userId,movieId,score,timestamp\n1,1,4,5\n")
    with pytest.raises(DataError) as info:
        read_format("movielens-latest", tmp_path)
    assert (info.value.row, info.value.column) == (1, "rating")
    assert "ratings.csv" in str(info.value)


def test_fractional_movie_id(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,5\n1,2.5,4,5\n")
    with pytest.raises(DataError) as info:
        read_format("movielens-latest", tmp_path)
    assert (info.value.row, info.value.column) == (3, "movieId")


def test_missing_movies(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "movies.csv").unlink()
    with pytest.raises(DataError, match=r"movies\.csv"):
        read_format("movielens-latest", tmp_path)

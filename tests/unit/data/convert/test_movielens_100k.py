"""MovieLens 100K layout: tab-separated u.data, |-separated u.user and latin-1 u.item."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from funnelrec.data.convert import read_format
from funnelrec.data.convert.movielens_100k import GENRES
from funnelrec.errors import DataError


def flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES)


def make(folder: Path) -> Path:
    (folder / "u.data").write_text(
        "1\t10\t4\t881250949\n2\t10\t5\t881250950\n1\t11\t1\t881250951\n"
    )
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|T8H1N\n")
    (folder / "u.item").write_bytes(
        (
            f"10|Misérables, Les (1995)|01-Jan-1995||http://x|{flags('Drama', 'Musical')}\n"
            f"11|unknown||||{flags('unknown')}\n"
            f"12|Nothing (1990)|05-Mar-1990||http://y|{flags()}\n"
        ).encode("latin-1")
    )
    return folder


def test_interactions_are_ratings(tmp_path: Path) -> None:
    t = read_format("movielens-100k", make(tmp_path))
    inter = t.interactions
    assert inter["event"].unique().to_list() == ["rating"]
    assert inter["value"].to_list() == [4.0, 5.0, 1.0]
    assert inter["timestamp"].to_list() == [881250949, 881250950, 881250951]
    assert inter.schema["user_id"] == pl.Int64


def test_items_genres_title_and_release(tmp_path: Path) -> None:
    items = read_format("movielens-100k", make(tmp_path)).items
    assert items is not None
    rows = {r["item_id"]: r for r in items.iter_rows(named=True)}
    assert rows[10]["title"] == "Misérables, Les (1995)"
    assert rows[10]["category"] == "Drama"
    assert rows[10]["genres"] == "Drama|Musical"
    assert rows[10]["created_at"] == 788918400
    assert rows[10]["year"] == 1995
    assert rows[11]["created_at"] is None and rows[11]["category"] == "unknown"
    assert rows[12]["category"] is None and rows[12]["genres"] is None


def test_users(tmp_path: Path) -> None:
    users = read_format("movielens-100k", make(tmp_path)).users
    assert users is not None
    assert users["region"].to_list() == ["85711", "T8H1N"]
    assert users["age"].to_list() == [24, 53]
    assert users["occupation"].to_list() == ["technician", "other"]


def test_missing_file_is_named(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "u.item").unlink()
    with pytest.raises(DataError, match=r"u\.item"):
        read_format("movielens-100k", tmp_path)


def test_garbled_rating_names_row_and_column(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "u.data").write_text("1\t10\t4\t881250949\n2\t10\tfive\t881250950\n")
    with pytest.raises(DataError) as info:
        read_format("movielens-100k", tmp_path)
    assert info.value.path == str(tmp_path / "u.data")
    assert (info.value.row, info.value.column) == (2, "rating")


def test_bad_release_date(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "u.item").write_text(f"10|X (1995)|1995/01/01||u|{flags('Drama')}\n")
    with pytest.raises(DataError) as info:
        read_format("movielens-100k", tmp_path)
    assert (info.value.row, info.value.column) == (1, "release_date")


def test_wrong_field_count(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "u.user").write_text("1|24|M|technician\n")
    with pytest.raises(DataError, match=r"u\.user, row 1: expected 5 fields"):
        read_format("movielens-100k", tmp_path)


@pytest.mark.shared_data
def test_real_movielens_100k(shared_data: Path) -> None:
    t = read_format("movielens-100k", shared_data / "movielens-100k")
    assert t.interactions.height == 100_000
    assert t.users is not None and t.users.height == 943
    assert t.items is not None and t.items.height == 1_682
    assert t.interactions["user_id"].n_unique() == 943
    assert t.interactions["item_id"].n_unique() == 1_682
    counts = dict(t.interactions["value"].value_counts().iter_rows())
    assert counts == {1.0: 6_110, 2.0: 11_370, 3.0: 27_145, 4.0: 34_174, 5.0: 21_201}
    assert t.interactions["timestamp"].min() == 874724710
    assert t.interactions["timestamp"].max() == 893286638
    assert all(r.n_dropped == 0 for r in t.reports)
    assert t.items.filter(pl.col("created_at").is_null())["item_id"].to_list() == [267]
    assert "Misérables" in t.items.filter(pl.col("item_id") == 543)["title"][0]

"""MovieLens 1M layout: ``::``-separated ratings.dat, users.dat and latin-1 movies.dat."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelrec.data.convert import read_format
from funnelrec.errors import DataError


def make(folder: Path) -> Path:
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072-1234\n")
    (folder / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "3::Misérables: Part 2 (1998)::Drama\n".encode("latin-1")
    )
    return folder


def test_ratings(tmp_path: Path) -> None:
    inter = read_format("movielens-1m", make(tmp_path)).interactions
    assert inter.select("user_id", "item_id", "timestamp").rows()[0] == (1, 1193, 978300760)
    assert inter["event"].unique().to_list() == ["rating"]
    assert inter["value"].to_list() == [5.0, 3.0, 4.0]


def test_movies_latin1_and_colon_titles(tmp_path: Path) -> None:
    items = read_format("movielens-1m", make(tmp_path)).items
    assert items is not None
    rows = {r["item_id"]: r for r in items.iter_rows(named=True)}
    assert rows[3]["title"] == "Misérables: Part 2 (1998)"
    assert rows[661]["category"] == "Animation"
    assert rows[661]["genres"] == "Animation|Children's|Musical"
    assert rows[1193]["year"] == 1975


def test_users_occupation_names(tmp_path: Path) -> None:
    users = read_format("movielens-1m", make(tmp_path)).users
    assert users is not None
    assert users["occupation"].to_list() == ["K-12 student", "self-employed"]
    assert users["age"].to_list() == [1, 56]
    assert users["region"].to_list() == ["48067", "70072-1234"]


def test_missing_ratings(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "ratings.dat").unlink()
    with pytest.raises(DataError, match=r"ratings\.dat"):
        read_format("movielens-1m", tmp_path)


def test_too_many_fields_names_line(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "ratings.dat").write_text("1::2::3::4\n1::2::3::4::5\n")
    with pytest.raises(DataError) as info:
        read_format("movielens-1m", tmp_path)
    assert info.value.path == str(tmp_path / "ratings.dat")
    assert info.value.row == 2


def test_bad_timestamp(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "ratings.dat").write_text("1::2::3::4\n1::2::3::noon\n")
    with pytest.raises(DataError) as info:
        read_format("movielens-1m", tmp_path)
    assert (info.value.row, info.value.column) == (2, "timestamp")

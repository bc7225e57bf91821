"""Format dispatch: names, unknown formats, writing canonical Parquet, every real dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelrec.data import Dataset
from funnelrec.data.convert import FORMATS, ConversionReport, convert, read_format
from funnelrec.data.io import load_dataset_dir
from funnelrec.errors import DataError, FunnelrecError

SHARED = {
    "movielens-100k": "movielens-100k",
    "mind": "mind-small-sample",
    "taobao": "taobao-userbehavior-head",
    "kuairec": "kuairec-head",
    "kuairand": "kuairand-sample",
    "ali-ccp": "ali-ccp-sample",
}


def test_format_names() -> None:
    assert FORMATS == (
        "movielens-100k",
        "movielens-1m",
        "movielens-latest",
        "mind",
        "taobao",
        "kuairec",
        "kuairand",
        "ali-ccp",
    )


@pytest.mark.parametrize("call", [read_format, lambda f, s: convert(f, s, s / "out")])
def test_unknown_format_lists_valid_names(tmp_path: Path, call) -> None:
    with pytest.raises(FunnelrecError) as info:
        call("movielens-10k", tmp_path)
    message = str(info.value)
    assert "movielens-10k" in message
    assert all(name in message for name in FORMATS)


@pytest.mark.parametrize("name", FORMATS)
def test_missing_source_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError) as info:
        read_format(name, tmp_path / "absent")
    assert info.value.path == str(tmp_path / "absent")


@pytest.mark.parametrize("name", FORMATS)
def test_empty_source_folder_names_a_missing_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError) as info:
        read_format(name, tmp_path)
    assert str(tmp_path) in str(info.value)


def test_convert_writes_parquet_and_reports(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "UserBehavior.csv").write_text("1,10,100,pv,1511544070\n1,11,100,buy,1511544071\n2,10")
    report = convert("taobao", src, tmp_path / "dst")
    assert isinstance(report, ConversionReport)
    assert report.format == "taobao"
    assert report.rows == {"interactions": 2, "items": 2}
    assert report.dropped == {"UserBehavior.csv": {"null timestamp": 1}}
    assert "dropped from UserBehavior.csv: null timestamp: 1" in report.summary()
    back = load_dataset_dir(tmp_path / "dst")
    assert back.interactions.equals(read_format("taobao", src).interactions)
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == [
        "interactions.parquet",
        "items.parquet",
    ]


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(SHARED))
def test_real_dataset_converts_and_indexes(shared_data: Path, tmp_path: Path, name: str) -> None:
    report = convert(name, shared_data / SHARED[name], tmp_path)
    tables = load_dataset_dir(tmp_path)
    assert report.rows["interactions"] == tables.interactions.height
    ds = Dataset.build(tables.interactions, tables.items, tables.users)
    assert ds.n_users > 0 and ds.n_items > 0
    assert ds.interactions["user_idx"].min() >= 0

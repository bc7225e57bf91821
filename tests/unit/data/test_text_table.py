"""Delimited text files: encodings, separators, malformed lines and the rows errors name."""

from __future__ import annotations

from pathlib import Path

from funnelrec.data.io import read_table
from funnelrec.data.text_table import read_text_table
from funnelrec.schema import INTERACTIONS
from support.tables import HEADER, read_error, write


def test_bom_and_crlf(tmp_path: Path) -> None:
    p = write(tmp_path / "i.csv", b"\xef\xbb\xbfuser_id,item_id,timestamp\r\n1,2,3\r\n")
    df, _ = read_table(p, INTERACTIONS)
    assert df.row(0)[:3] == (1, 2, 3)


def test_header_only_file(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", HEADER + "\n"))
    assert "i.csv" in str(err) and "no rows" in str(err)


def test_duplicated_column_names(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", "user_id,item_id,timestamp,item_id\n1,2,3,4\n"))
    assert (err.row, err.column) == (1, "item_id")
    assert "duplicated column" in str(err)


def test_duplicated_header_line(tmp_path: Path) -> None:
    text = f"{HEADER}\n1,2,3\n{HEADER}\n4,5,6\n"
    err = read_error(write(tmp_path / "i.csv", text))
    assert err.row == 3
    assert "duplicated header" in str(err) and "i.csv" in str(err)


def test_ragged_line(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", f"{HEADER}\n1,2,3\n4,5,6,7\n"))
    assert err.row == 3 and "i.csv" in str(err)


def test_not_utf8(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", f"{HEADER}\n1,2,3\n4,\xe9,6\n".encode("latin-1")))
    assert err.row == 3 and "UTF-8" in str(err)


def test_row_numbers_count_quoted_newlines(tmp_path: Path) -> None:
    text = f'{HEADER},title\n1,2,3,"two\nlines"\n1,2,bad,x\n'
    err = read_error(write(tmp_path / "i.csv", text))
    assert err.row == 4


def test_read_text_table_headerless_multichar_separator_latin1(tmp_path: Path) -> None:
    p = write(tmp_path / "u.dat", "1::caf\xe9::3\n2::b\n".encode("latin-1"))
    raw, row_of = read_text_table(
        p, separator="::", columns=("a", "b", "c"), quote_char=None, encoding="latin-1"
    )
    assert raw.columns == ["a", "b", "c"]
    assert raw.row(0) == ("1", "caf\xe9", "3")
    assert raw.row(1) == ("2", "b", None)
    assert [row_of(0), row_of(1)] == [1, 2]

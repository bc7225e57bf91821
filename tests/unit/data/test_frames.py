import itertools

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from funnelrec.data.frames import (
    float32_series,
    masked_float32_column,
    masked_float32_columns,
    rows_at,
    rows_where,
    select_columns,
    string_column,
    string_list_column,
)


def _frame() -> pl.DataFrame:
    return pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


@pytest.mark.parametrize(
    ("mask", "expected"),
    [([True, False, True], [1, 3]), ([True] * 3, [1, 2, 3]), ([False] * 3, [])],
)
def test_rows_where_keeps_the_masked_rows_in_order_with_the_schema(
    mask: list[bool], expected: list[int]
) -> None:
    out = rows_where(_frame(), np.array(mask))
    assert out["a"].to_list() == expected
    assert out.schema == _frame().schema


def test_rows_where_refuses_a_mask_of_another_length() -> None:
    with pytest.raises(ValueError, match="2 rows|3 rows"):
        rows_where(_frame(), np.array([True, False]))


def test_rows_at_gathers_as_numpy_indexing_does() -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"a": rng.integers(0, 9, 50), "b": [f"s{i}" for i in range(50)]})
    for rows in (rng.integers(0, 50, 80), np.arange(50), np.array([], dtype=np.int64)):
        assert rows_at(frame, rows).equals(frame[rows])
    assert rows_at(frame, np.array([-1, 0]))["a"].to_list() == frame["a"][[-1, 0]].to_list()


def test_rows_at_keeps_nulls_lists_and_multi_chunk_columns() -> None:
    """The column-by-column gather equals polars' own on every column kind it meets."""
    rng = np.random.default_rng(1)
    part = pl.DataFrame(
        {
            "f": pl.Series([1.5, None, float("nan"), 2.0], dtype=pl.Float32),
            "s": ["x", None, "y", "z"],
            "l": [["a"], [], None, ["b", "c"]],
            "i": pl.Series([1, 2, None, 4], dtype=pl.Int64),
        }
    )
    frame = pl.concat([part, part.reverse()], rechunk=False)  # two chunks per column
    rows = rng.integers(0, frame.height, 20)
    assert rows_at(frame, rows).equals(frame[rows])
    assert rows_at(frame, rows).schema == frame.schema
    strided = np.arange(frame.height)[::-2]  # a view with a negative stride
    assert rows_at(frame, strided).equals(frame[strided])
    assert rows_at(frame, rows.astype(np.int32)).equals(frame[rows])
    assert rows_at(pl.DataFrame(), np.array([], dtype=np.int64)).shape == (0, 0)


def test_select_columns_equals_polars_selection_in_the_given_order() -> None:
    frame = pl.DataFrame({"a": [1, None], "b": [["x"], []], "c": ["s", "t"]})
    assert select_columns(frame, ["c", "a"]).equals(frame[["c", "a"]])
    assert select_columns(frame, []).shape == (0, 0)
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        select_columns(frame, ["nope"])


def test_rows_at_out_of_bounds_is_polars_error() -> None:
    with pytest.raises((IndexError, pl.exceptions.OutOfBoundsError)):
        rows_at(pl.DataFrame({"a": [1, 2]}), np.array([0, 2]))


def test_string_columns_equal_polars_strings() -> None:
    labels = ["itemcf", "a_channel_name_longer_than_twelve_bytes", "é", ""]
    rng = np.random.default_rng(0)
    codes = rng.integers(0, len(labels), 200)
    expected = pl.Series("s", [labels[c] for c in codes], dtype=pl.String)
    assert string_column("s", labels, codes).equals(expected)
    lengths = rng.integers(0, 4, 50)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    flat = rng.integers(0, len(labels), int(offsets[-1]))
    rows = [[labels[c] for c in flat[s:e]] for s, e in itertools.pairwise(offsets)]
    out = string_list_column("l", labels, offsets, flat)
    assert out.equals(pl.Series("l", rows, dtype=pl.List(pl.String)))
    with pytest.raises(ValueError, match="codes"):
        string_column("s", labels, np.array([4]))


@pytest.mark.parametrize("nan_at", [None, "present", "absent"])
@pytest.mark.parametrize("share_present", [0.0, 0.7, 1.0])
def test_masked_float32_column_equals_an_arrow_masked_array(
    nan_at: str | None, share_present: float
) -> None:
    """Each way the column is built (every value present; nulls marked by NaN when no kept
    value is NaN; Arrow buffers when one is) gives the Arrow masked array: nulls where not
    present, a present NaN kept as NaN."""
    rng = np.random.default_rng(0)
    values = rng.random(100).astype(np.float32)
    present = rng.random(100) < share_present
    if nan_at is not None and share_present not in (0.0, 1.0):
        row = int(np.flatnonzero(present if nan_at == "present" else ~present)[0])
        values[row] = np.nan
    expected = pl.Series("x", pa.array(values, mask=~present), dtype=pl.Float32)
    got = masked_float32_column("x", values, present)
    assert got.equals(expected) and got.dtype == pl.Float32
    assert got.null_count() == int((~present).sum())
    assert int(got.is_nan().sum()) == int(np.isnan(values[present]).sum())


def test_float32_series_equals_the_polars_constructor() -> None:
    values = np.array([0.5, np.nan, -np.inf, 3.0], dtype=np.float32)
    got = float32_series("ev_x", values)
    assert got.dtype == pl.Float32
    assert got.equals(pl.Series("ev_x", values), check_names=True)
    assert got.is_nan().to_list() == [False, True, False, False]  # NaN stays NaN, not null
    assert float32_series("x", values, nan_is_null=True).to_list() == [0.5, None, -np.inf, 3.0]
    assert float32_series("x", values[::2]).to_list() == [0.5, -np.inf]  # a strided view


def test_masked_float32_columns_equal_one_masked_column_each() -> None:
    rng = np.random.default_rng(1)
    values = rng.random((3, 40)).astype(np.float32)
    present = rng.random(40) > 0.5
    columns = masked_float32_columns(["a", "b", "c"], values, present)
    for name, row, column in zip("abc", values, columns, strict=True):
        assert column.equals(masked_float32_column(name, row, present))
        assert column.name == name

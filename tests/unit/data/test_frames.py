import numpy as np
import polars as pl
import pytest

from funnelrec.data.frames import rows_where


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

import polars as pl
import pytest

from funnelrec.errors import DataError
from funnelrec.schema import INTERACTIONS, check_schema


def test_missing_column_is_named() -> None:
    df = pl.DataFrame({"user_id": [1], "item_id": [2], "event": ["click"], "value": [1.0]})
    with pytest.raises(DataError, match="column 'timestamp'.*missing"):
        check_schema(df, INTERACTIONS, source="x.csv")


def test_mistyped_column_is_named() -> None:
    df = pl.DataFrame(
        {"user_id": [1], "item_id": [2], "timestamp": ["x"], "event": ["c"], "value": [1.0]}
    )
    with pytest.raises(DataError, match="x.csv, column 'timestamp': expected an integer"):
        check_schema(df, INTERACTIONS, source="x.csv")

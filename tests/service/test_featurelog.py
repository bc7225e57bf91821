"""The feature log's lines: what is written reads back equal, what cannot be written is an
error the service catches, and a damaged file is one DataError line."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelrec.errors import DataError
from funnelrec.serve.featurelog import FeatureLogger, read_feature_log


def test_records_read_back_equal(tmp_path: Path) -> None:
    record = {
        "version": 1,
        "user_id": "usér-ß",
        "time": 1733500000.123456,
        "floats": [1e-7, 0.1, 1 / 3, -0.0, 3.4028234663852886e38],
        "big": 2**70,
        "items": {"item_id": ["a", 7], "score": [0.5, None]},
        "flag": True,
    }
    log = FeatureLogger(tmp_path / "features.jsonl")
    log.write(record)
    log.close()
    assert [r for _, r in read_feature_log(tmp_path / "features.jsonl")] == [record]


@pytest.mark.parametrize("value", ["\ud800", object()])
def test_a_value_that_cannot_be_written_raises_value_error(tmp_path: Path, value: object) -> None:
    log = FeatureLogger(tmp_path / "features.jsonl")
    with pytest.raises(ValueError):
        log.write({"version": 1, "x": value})
    log.close()


@pytest.mark.parametrize(
    ("line", "message"), [(b'{"version": 1, "x": "\xff"}\n', "not UTF-8"), (b"{nope\n", "not JSON")]
)
def test_a_damaged_line_is_one_data_error(tmp_path: Path, line: bytes, message: str) -> None:
    path = tmp_path / "features.jsonl"
    path.write_bytes(b'{"version": 1}\n' + line)
    with pytest.raises(DataError, match=message):
        list(read_feature_log(path))

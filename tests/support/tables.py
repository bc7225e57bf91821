"""Writing small table files and catching the one-line error a bad one gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelrec.data.io import read_table
from funnelrec.errors import DataError
from funnelrec.schema import INTERACTIONS, TableSpec

HEADER = "user_id,item_id,timestamp"


def write(path: Path, text: str | bytes) -> Path:
    """Write ``text`` (UTF-8) or raw bytes to ``path``; returns the path."""
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read_error(path: Path, spec: TableSpec = INTERACTIONS) -> DataError:
    """The DataError that reading ``path`` as ``spec`` raises (fails the test if none)."""
    with pytest.raises(DataError) as info:
        read_table(path, spec)
    return info.value

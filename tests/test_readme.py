"""The README's Python API examples run as written (in order, in one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_examples(text: str, section: str) -> list[str]:
    """The ```python blocks of the ``## section`` of a Markdown text."""
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end >= 0 else len(text)]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_python_api_section_has_examples() -> None:
    assert len(python_examples(README.read_text(), "Python API")) >= 3


def test_python_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in python_examples(README.read_text(), "Python API"):
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "artifacts" / "manifest.json").is_file()

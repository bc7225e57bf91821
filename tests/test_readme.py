"""The README's Python API examples run as written (in order, in one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_examples(text: str, section: str) -> list[str]:
    """The ```python blocks of the ``## section`` of a Markdown text, each padded with blank
    lines so that a traceback names its line in the README."""
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    end = end if end >= 0 else len(text)
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", text[start:end], flags=re.S):
        first_line = text[: start + match.start(1)].count("\n")
        blocks.append("\n" * first_line + match.group(1))
    return blocks


def test_python_api_section_has_examples() -> None:
    assert len(python_examples(README.read_text(), "Python API")) >= 3


def test_python_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in python_examples(README.read_text(), "Python API"):
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "artifacts" / "manifest.json").is_file()

"""Checks a generated HTML report must pass: every number a person reads is short, no cell
says "None", and the page needs no other file."""

from __future__ import annotations

import html
import re

CELL = re.compile(r"<td>(.*?)</td>", re.S)
TAG = re.compile(r"<[^>]+>")
# An integer written with thousands separators (1,146 or 23,549) is a count: any length.
GROUPED = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d.])")
NUMBER = re.compile(r"(?<![A-Za-z_\d])\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def cells(page: str) -> list[str]:
    """The text of every ``<td>`` of ``page``."""
    return [html.unescape(TAG.sub("", c)).strip() for c in CELL.findall(page)]


def significant_digits(number: str) -> int:
    """``0.09633`` -> 4, ``856.0`` -> 4, ``1146`` -> 4, ``1.2e-05`` -> 2."""
    mantissa = number.lower().split("e")[0]
    digits = mantissa.replace(".", "").lstrip("0")
    if "." not in mantissa:
        digits = digits.rstrip("0")
    return len(digits)


def long_numbers(page: str) -> list[tuple[str, str]]:
    """(cell, number) for every number in a table cell with more than 4 significant digits."""
    found = []
    for text in cells(page):
        for number in NUMBER.findall(GROUPED.sub("", text)):
            if significant_digits(number) > 4:
                found.append((text, number))
    return found


# A missing value printed raw: Python's None, a float NaN, JSON's null (a dash with a note
# under the table is how a report says "not measured").
RAW_MISSING = re.compile(r"\b(none|nan|null)\b", re.I)


def raw_missing(page: str) -> list[str]:
    """The cells that print a missing value raw."""
    return [t for t in cells(page) if RAW_MISSING.search(t)]


def assert_readable_report(page: str) -> None:
    texts = cells(page)
    assert texts, "no table cells in the report"
    assert not raw_missing(page), f"cells print a missing value raw: {raw_missing(page)[:5]}"
    assert not long_numbers(page), long_numbers(page)[:5]
    # self-contained: every image is a data URI, nothing points at a file beside the page
    assert not re.findall(r'src="(?!data:)', page)

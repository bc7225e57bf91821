"""User-facing error types.

Every error a user can cause (bad file, bad column, bad option) is a ``FunnelrecError``; the
CLI prints its message on one line and exits with code 2, never with a traceback.
"""

from __future__ import annotations

SHOWN_CHARS = 40
"""Longest value (an id, a cell) quoted whole in a message; longer ones are cut."""


def shortened(text: str, limit: int = SHOWN_CHARS) -> str:
    r"""``text`` for a message: one line (newlines and other control characters escaped) cut
    to ``limit`` characters, since a value from a file or a request can be megabytes long.

    Example:
        >>> shortened("x" * 100)
        'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (100 chars)'
        >>> shortened("a\nb")
        'a\\nb'
    """
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text)} chars)"


def quoted(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` for a message, cut like :func:`shortened`.

    Example:
        >>> quoted("x" * 100)
        "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' (100 chars)"
        >>> quoted(42)
        '42'
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[: limit - 3] + '...'!r} ({len(value)} chars)"
    return shortened(repr(value), limit)


class FunnelrecError(Exception):
    """Base class for errors caused by user input, reported without a traceback."""


class DataError(FunnelrecError):
    """Input data is missing, malformed or inconsistent.

    The message names the file, and where known the row (1-based, header = row 1) and column.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
        self.path = path
        self.row = row
        self.column = column


class ConfigError(FunnelrecError):
    """A configuration value or override is invalid or unknown."""


class MissingInputError(ConfigError):
    """The data lacks what a component needs (e.g. a content channel without an items table).

    The funnel skips such a channel, logs why and records it in metrics.json, so a default
    configuration runs on data with fewer tables instead of failing.
    """

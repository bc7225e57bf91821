"""User-facing error types.

Every error a user can cause (bad file, bad column, bad option) is a ``FunnelrecError``; the
CLI prints its message on one line and exits with code 2, never with a traceback.
"""

from __future__ import annotations


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

"""Fitted state as flat ``{name: array}`` dicts (saved with ``np.savez``, never pickled):
components nest their parts' states under name prefixes."""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

State = dict[str, NDArray[Any]]


def prefixed(state: State, prefix: str) -> State:
    """The entries of ``state`` under ``prefix``, with the prefix removed.

    Example:
        >>> import numpy as np
        >>> sorted(prefixed({"net.w": np.zeros(1), "meta": np.zeros(1)}, "net."))
        ['w']
    """
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}

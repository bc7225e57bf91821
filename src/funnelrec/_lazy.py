"""Lazy package attributes (PEP 562): a package names what it exports and where, and heavy
modules (torch, Faiss) are imported only when one of their names is first used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    namespace: dict[str, Any], exports: Mapping[str, str], package: str
) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``exports`` (name -> defining module) on first use
    and caching the value in ``namespace`` (the package's ``globals()``).

    Example:
        >>> ns: dict = {}
        >>> get = lazy_getattr(ns, {"sqrt": "math"}, "demo")
        >>> get("sqrt")(9.0), "sqrt" in ns
        (3.0, True)
    """

    def resolve(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups skip this function
        return value

    return resolve

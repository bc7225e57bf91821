"""TOML loading and ``--set key=value`` overrides, validated into an ExperimentConfig."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> (["a", "b", "c"], value). The value is read as a TOML literal
    (numbers, booleans, strings, arrays), falling back to a bare string.

    Example:
        >>> parse_override("split.test_fraction=0.2")
        (['split', 'test_fraction'], 0.2)
    """
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got '{text}'")
    key, raw = text.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"--set key '{key}' has an empty part")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def _apply(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{'.'.join(path)}': '{part}' is not a table")
        node = child
    if path[-1] == "kind" and node.get("kind") not in (None, value):
        # Switching a section's kind discards the old kind's fields (they may not exist).
        node.clear()
    node[path[-1]] = value


# Sections a user file replaces whole instead of merging into the defaults, so that a file
# listing its own channels does not silently keep the default ones.
_REPLACED_SECTIONS = {("recall", "channels"), ("recall", "merge", "quotas")}


def _nones(value: Any) -> Any:
    """TOML has no null: the strings "none"/"null" stand for it (e.g. to switch a decay off)."""
    if isinstance(value, str) and value.strip().lower() in ("none", "null"):
        return None
    if isinstance(value, dict):
        return {k: _nones(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nones(v) for v in value]
    return value


def _deep_merge(
    base: dict[str, Any], top: dict[str, Any], prefix: tuple[str, ...] = ()
) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        here = (*prefix, key)
        old = out.get(key)
        if (
            isinstance(value, dict)
            and isinstance(old, dict)
            and value.get("kind", old.get("kind")) == old.get("kind")
            and here not in _REPLACED_SECTIONS
        ):
            out[key] = _deep_merge(old, value, here)
        else:
            out[key] = value
    return out


def _format_validation(err: ValidationError, tree: dict[str, Any]) -> str:
    """First error as ``config error at 'a.b.c': message``, with the dotted path the user would
    type (pydantic inserts union tags such as 'temporal' into the location; they are dropped)."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    parts: list[str] = []
    node: Any = tree
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            parts.append(part)
            node = node[part]
        elif i == len(loc) - 1 or not isinstance(node, dict):
            parts.append(part)
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"config error at '{'.'.join(parts)}': {first['msg']}{more}"


def load_config(
    path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> ExperimentConfig:
    """Defaults <- TOML file <- ``--set`` overrides, validated. Unknown keys fail loudly.

    The string ``"none"`` sets an optional value to None (TOML has no null).

    Example:
        >>> load_config(overrides=["split.kind=leave_last_out"]).split.kind
        'leave_last_out'
    """
    tree: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
    merged = _deep_merge(ExperimentConfig().model_dump(mode="json"), _nones(tree))
    parsed = [parse_override(text) for text in overrides]
    # Kind switches first, so the other overrides of that section land on the new kind.
    for p, v in sorted(parsed, key=lambda pv: pv[0][-1] != "kind"):
        _apply(merged, p, _nones(v))
    try:
        return ExperimentConfig.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, merged)) from None

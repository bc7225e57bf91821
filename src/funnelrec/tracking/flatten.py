"""Nested JSON (a resolved config, a metrics.json) as the flat key/value pairs MLflow stores.

Params keep the dotted config path a user types in ``--set`` (``recall.merge.k``). Metrics use
``/`` between levels, which the MLflow UI groups charts by (``recall/itemcf/recall_at_10``);
``@`` is not allowed in a metric name and becomes ``_at_``. Lists of records are keyed by
what names a record (``funnel/stages/rank/...``, ``guards/rerank/...``), a ``[low, high]`` pair
by ``low`` / ``high``, and a boolean is 1 / 0 (a guard's ``kept``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

# The fields that name a record in a list (a funnel stage, a guard, a tuned channel, a sweep
# point), tried in this order; a record with none of them is keyed by its position.
RECORD_KEYS = ("stage", "channel", "method", "param", "epoch")
# MLflow's limits (mlflow.utils.validation): a param value and a key's length.
MAX_PARAM_VALUE = 6000
MAX_KEY = 250
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")


def safe_key(key: str) -> str:
    """A key MLflow accepts: ``@`` -> ``_at_``, any other unsafe character -> ``_``.

    Example:
        >>> safe_key("recall/two tower/recall@10")
        'recall/two tower/recall_at_10'
    """
    return _UNSAFE.sub("_", key.replace("@", "_at_"))[:MAX_KEY]


def flat_params(config: Mapping[str, Any]) -> dict[str, str]:
    """A config tree as ``{"a.b.c": "value"}``; lists and empty tables as JSON text.

    Example:
        >>> flat_params({"split": {"kind": "temporal"}, "eval": {"ks": [10, 20]}})
        {'split.kind': 'temporal', 'eval.ks': '[10, 20]'}
    """
    out: dict[str, str] = {}
    for path, value in _walk_tree(config, ()):
        text = value if isinstance(value, str) else json.dumps(value)
        out[".".join(path)] = text[:MAX_PARAM_VALUE]
    return out


def _walk_tree(node: Mapping[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple, Any]]:
    for key, value in node.items():
        here = (*path, str(key))
        if isinstance(value, Mapping) and value:
            yield from _walk_tree(value, here)
        else:
            yield here, value


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every finite number in ``metrics`` under a ``/``-joined, MLflow-safe key.

    NaN (a guard that was not judged, a metric with no queries) is left out rather than
    logged: MLflow would chart it as a gap anyway, and the run's metrics.json keeps it.

    Example:
        >>> flat_metrics({"guards": [{"stage": "rank", "kept": True, "value": 0.15}]})
        {'guards/rank/kept': 1.0, 'guards/rank/value': 0.15}
        >>> flat_metrics({"lists": {"merged": {"recall@10": [0.2, 0.3]}}})
        {'lists/merged/recall_at_10/low': 0.2, 'lists/merged/recall_at_10/high': 0.3}
    """
    out: dict[str, float] = {}
    for path, value in _walk_values(metrics, (prefix,) if prefix else ()):
        if math.isfinite(value):
            out[safe_key("/".join(path))] = value
    return out


def _walk_values(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    if isinstance(node, int | float):  # bool too: a guard's kept -> 1.0 / 0.0
        yield path, float(node)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk_values(value, (*path, str(key)))
    elif isinstance(node, list | tuple):
        if len(node) == 2 and all(_is_number(v) for v in node):
            yield (*path, "low"), float(node[0])
            yield (*path, "high"), float(node[1])
            return
        for i, item in enumerate(node):
            yield from _walk_values(_without_name(item), (*path, _record_name(item, i)))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _name_field(item: Any) -> str | None:
    """The field among RECORD_KEYS that names ``item`` (a string or a number), if any."""
    if not isinstance(item, Mapping):
        return None
    return next(
        (key for key in RECORD_KEYS if _is_number(item.get(key)) or isinstance(item.get(key), str)),
        None,
    )


def _record_name(item: Any, position: int) -> str:
    field = _name_field(item)
    if field is None:
        return str(position)
    value = item[field]
    return f"{value:g}" if isinstance(value, float) else str(value)


def _without_name(item: Any) -> Any:
    """The record minus the field that names it (it is in the key already)."""
    field = _name_field(item)
    return item if field is None else {k: v for k, v in item.items() if k != field}


def text_tags(metrics: Mapping[str, Any]) -> dict[str, str]:
    """What a reader filters runs by but is not a number: each guard's decision and reason.

    Example:
        >>> text_tags({"guards": [{"stage": "rank", "kept": False, "reason": "not better"}]})
        {'guard.rank': 'bypassed', 'guard.rank.reason': 'not better'}
    """
    tags: dict[str, str] = {}
    for guard in metrics.get("guards", []) or []:
        stage = safe_key(str(guard.get("stage", "?")))
        tags[f"guard.{stage}"] = "kept" if guard.get("kept") else "bypassed"
        if guard.get("reason"):
            tags[f"guard.{stage}.reason"] = str(guard["reason"])[:MAX_PARAM_VALUE]
    return tags


__all__ = ["flat_metrics", "flat_params", "safe_key", "text_tags"]

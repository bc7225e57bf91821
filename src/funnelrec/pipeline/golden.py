"""The golden set: requests recorded with their results when an artifact is saved, re-scored
when it is loaded for serving.

The manifest's hashes prove the files are the ones written; they cannot prove that the files
*reproduce the model that was evaluated*: an artifact re-written with replaced embeddings (and
a matching manifest), weights that did not load into the module that reads them, a model left
in training mode (dropout on) or a library upgrade that changes numerics all pass the hash check
and serve wrong scores. Re-running recorded requests and comparing catches them.

Example:
    >>> golden = {"k": 2, "timestamp": 5, "requests": []}
    >>> sorted(golden)
    ['k', 'requests', 'timestamp']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from funnelrec.errors import FunnelrecError
from funnelrec.pipeline.funnel import Funnel

GOLDEN_VERSION = 1
COLD_PREFIX = "__golden_cold_"


class SelfCheckError(FunnelrecError):
    """An artifact does not reproduce the results recorded when it was saved."""


def golden_users(recommender: Funnel, n: int) -> list[Any]:
    """``n`` user ids spread over the vocabulary (known users) plus a few unknown ones (the
    cold-start path), deterministic for a given artifact."""
    n_users = len(recommender.user_vocab)
    n_cold = min(4, max(n // 8, 1))
    n_known = min(n - n_cold, n_users)
    picks = np.unique(np.linspace(0, max(n_users - 1, 0), num=n_known).round().astype(np.int64))
    known = recommender.user_vocab.ids.gather(picks).to_list() if n_users else []
    cold = [f"{COLD_PREFIX}{i}__" for i in range(n - len(known))]
    return [*known, *cold]


def _run(recommender: Funnel, users: list[Any], timestamp: int, k: int) -> list[dict]:
    ids = pl.Series("user_id", [str(u) for u in users], dtype=pl.String)
    ranked = recommender.run(recommender.queries(ids, timestamp), k=k).ranked
    out: list[dict] = []
    grouped = ranked.sort("query_id", "rank").partition_by("query_id", as_dict=True)
    for row, user in enumerate(users):
        part = grouped.get((row,))
        items = [] if part is None else part["item_id"].to_list()
        scores = [] if part is None else part["score"].to_list()
        out.append(
            {
                "user_id": user,
                "items": items,
                "scores": [None if s is None or not math.isfinite(s) else float(s) for s in scores],
            }
        )
    return out


def golden_set(recommender: Funnel, n: int = 32, k: int = 10) -> dict:
    """Record ``n`` requests (spread-out known users + a few unknown ones, one batch, as of the
    artifact's last event + 1 s) with their top-``k`` items and scores.

    Returns:
        A JSON-able dict ``{version, timestamp, k, requests: [{user_id, items, scores}]}``.
    """
    timestamp = recommender.as_of
    users = golden_users(recommender, n)
    return {
        "version": GOLDEN_VERSION,
        "timestamp": timestamp,
        "k": k,
        "requests": _run(recommender, users, timestamp, k),
    }


@dataclass(frozen=True)
class SelfCheckResult:
    """What :func:`self_check` compared."""

    requests: int
    mismatches: list[str] = field(default_factory=list)
    max_score_diff: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches


def compare_golden(
    recommender: Funnel,
    golden: dict,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    min_overlap: float = 0.8,
) -> SelfCheckResult:
    """Re-run the golden requests; a request mismatches when fewer than ``min_overlap`` of its
    recorded items come back or a common item's score moved by more than ``atol + rtol*|s|``
    (or became / stopped being null)."""
    if golden.get("version") != GOLDEN_VERSION:
        raise SelfCheckError(f"golden set version {golden.get('version')} is not supported")
    requests = golden["requests"]
    users = [r["user_id"] for r in requests]
    fresh = _run(recommender, users, int(golden["timestamp"]), int(golden["k"]))
    mismatches: list[str] = []
    worst = 0.0
    for want, got in zip(requests, fresh, strict=True):
        want_items = [str(i) for i in want["items"]]
        got_scores = dict(zip((str(i) for i in got["items"]), got["scores"], strict=True))
        common = [i for i in want_items if i in got_scores]
        if want_items and len(common) < min_overlap * len(want_items):
            mismatches.append(
                f"user {want['user_id']!r}: {len(common)}/{len(want_items)} recorded items "
                f"returned (recorded {want_items[:5]}..., now {list(got_scores)[:5]}...)"
            )
            continue
        if len(want_items) != len(got_scores):
            mismatches.append(
                f"user {want['user_id']!r}: {len(got_scores)} items, recorded {len(want_items)}"
            )
            continue
        for item, expected in zip(want_items, want["scores"], strict=True):
            if item not in got_scores:
                continue
            actual = got_scores[item]
            if (expected is None) != (actual is None):
                mismatches.append(
                    f"user {want['user_id']!r} item {item}: score {actual}, recorded {expected}"
                )
                break
            if expected is None:
                continue
            diff = abs(actual - expected)
            worst = max(worst, diff)
            if diff > atol + rtol * abs(expected):
                mismatches.append(
                    f"user {want['user_id']!r} item {item}: score {actual:.6g}, recorded "
                    f"{expected:.6g} (diff {diff:.3g})"
                )
                break
    return SelfCheckResult(len(requests), mismatches, worst)


def self_check(
    recommender: Funnel,
    golden: dict,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    min_overlap: float = 0.8,
) -> SelfCheckResult:
    """:func:`compare_golden`, raising :class:`SelfCheckError` on any mismatch.

    Raises:
        SelfCheckError: names how many golden requests differ and the first few differences,
            or why the golden requests could not run at all.
    """
    try:
        result = compare_golden(recommender, golden, atol=atol, rtol=rtol, min_overlap=min_overlap)
    except SelfCheckError:
        raise
    except Exception as e:
        # A malformed golden set or state that cannot even run (arrays of the wrong shape):
        # refused in one line like any other mismatch, never a traceback.
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise SelfCheckError(
            f"self-check could not run the golden requests ({type(e).__name__}: {first}); "
            "refusing the artifact"
        ) from None
    if not result.ok:
        shown = "; ".join(result.mismatches[:3])
        raise SelfCheckError(
            f"self-check failed: {len(result.mismatches)}/{result.requests} golden requests "
            f"differ from what was recorded when the artifact was saved ({shown}). The "
            "artifact does not reproduce its own results: replaced or corrupted weights, "
            "embeddings that did not load, a model in training mode, or different library "
            "versions. Refusing to serve it."
        )
    return result

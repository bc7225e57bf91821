"""Loading an artifact for serving: verify, eval mode, self-check, and the lookups built once
per artifact (history by user, the ranker's prepared log index, id maps, popularity)."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch

from funnelrec.artifacts import artifact_errors
from funnelrec.features.pit import PreparedLog
from funnelrec.pipeline.context import RequestContext
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.golden import SelfCheckError, SelfCheckResult, self_check
from funnelrec.pipeline.persist import load_with_golden
from funnelrec.serve.lookup import HistoryIndex
from funnelrec.serve.request import RequestSpec, popularity_order, run_request

logger = logging.getLogger(__name__)

DEFAULT_EVENTS = ("impression", "click", "cart", "order", "like", "fav")


@dataclass(frozen=True)
class LoadedModel:
    """A recommender ready to serve plus the lookups built for it at load time."""

    recommender: Funnel
    path: Path
    artifact_id: str
    cutoff: int
    history_index: HistoryIndex
    prepared_log: PreparedLog | None
    user_index: dict[str, int]
    item_index: dict[str, int]
    item_ids: list[Any]
    popularity: np.ndarray
    event_names: frozenset[str]
    attribute_names: tuple[str, ...]
    check: SelfCheckResult | None
    loaded_at: float = field(default_factory=time.time)


def artifact_id(path: Path) -> str:
    """Short content id of an artifact (hash of its manifest, which hashes every file)."""
    return hashlib.sha256((Path(path) / "manifest.json").read_bytes()).hexdigest()[:16]


def _eval_mode(recommender: Funnel) -> None:
    """Every torch module of the channels and the ranker in eval mode (no dropout)."""
    owners: list[Any] = [*recommender.channels.values()]
    if recommender.ranker is not None:
        owners.append(recommender.ranker)
    for owner in owners:
        for value in vars(owner).values():
            if isinstance(value, torch.nn.Module):
                value.eval()


def prepare(recommender: Funnel, path: Path, check: SelfCheckResult | None) -> LoadedModel:
    """Build the per-request lookups of a loaded recommender."""
    if recommender.reranker is not None:
        recommender.item_side()  # computed once here, shared by every request view
    log = recommender.rank_log
    events = set(DEFAULT_EVENTS)
    if log is not None:
        events |= set(log["event"].unique().to_list())
    if recommender.config.data.positive_events is not None:
        events |= set(recommender.config.data.positive_events)
    item_ids = recommender.item_vocab.ids.to_list()
    return LoadedModel(
        recommender=recommender,
        path=Path(path),
        artifact_id=artifact_id(path),
        cutoff=recommender.as_of - 1,
        history_index=HistoryIndex(recommender.history),
        prepared_log=(
            None if log is None or recommender.ranker is None else recommender.ranker.prepare(log)
        ),
        user_index={str(u): idx for idx, u in enumerate(recommender.user_vocab.ids.to_list())},
        item_index={str(i): idx for idx, i in enumerate(item_ids)},
        item_ids=item_ids,
        popularity=popularity_order(recommender),
        event_names=frozenset(events),
        attribute_names=tuple(recommender.users.encoder.columns),
        check=check,
    )


def load_checked(path: Path, *, check: bool = True) -> tuple[Funnel, SelfCheckResult | None]:
    """Load a verified artifact in eval mode and self-check its golden set (what ``serve``,
    hot reload and ``recommend`` all run before using an artifact).

    Raises:
        FunnelrecError: a refused artifact (signature, hashes, paths, unreadable files), no
            golden set (with ``check``), or a self-check that does not reproduce the recorded
            results.
    """
    path = Path(path)
    recommender, golden = load_with_golden(path)
    _eval_mode(recommender)
    if not check:
        return recommender, None
    if golden is None:
        raise SelfCheckError(
            f"{path}: the artifact has no golden set (saved by an older funnelrec), so it "
            "cannot be self-checked; re-save it (load_recommender + save_recommender) or "
            "use --no-self-check"
        )
    with torch.inference_mode():
        return recommender, self_check(recommender, golden)


def load_for_serving(path: Path, *, check: bool = True) -> LoadedModel:
    """Load an artifact for serving: :func:`load_checked`, then the per-request lookups.

    Raises:
        FunnelrecError: see :func:`load_checked`.
    """
    recommender, result = load_checked(path, check=check)
    with artifact_errors(path):  # lookups over inconsistent state fail in polars / torch
        model = prepare(recommender, Path(path), result)
    warm_up(model)
    return model


WARM_UP_USERS = 2
"""Known users (the most active ones) whose requests warm a loaded artifact up, besides one
unknown user."""


def warm_up(model: LoadedModel) -> None:
    """Serve a few requests (the most active known users and an unknown one) before the
    artifact takes traffic, so that its first real requests do not pay one-off costs.

    The request path's compiled kernels load from numba's cache (or compile) at their first
    call and the per-log tables are built at the first request that reads them: measured on
    the serving benchmark's artifact, that first request took ~0.4 s and its two-tower
    channel went past the 250 ms recall budget and was dropped. Nothing is recorded (no
    store, feature log or metrics); a failure here is logged and left to the real requests,
    whose own error handling applies.
    """
    rec = model.recommender
    start = time.perf_counter()
    counts = np.bincount(rec.history["user_idx"].to_numpy(), minlength=len(rec.user_vocab))
    users = [str(rec.user_vocab.ids[int(u)]) for u in np.argsort(-counts)[:WARM_UP_USERS]]
    k = min(10, model.popularity.shape[0]) or 1
    try:
        with torch.inference_mode():
            for user_id in [*users, "\x00funnelrec-warm-up"]:
                user_idx = model.user_index.get(user_id, -1)
                context = RequestContext(
                    history=model.history_index.for_user(user_idx), rank_log=model.prepared_log
                )
                spec = RequestSpec(user_id, k, model.cutoff + 1)
                run_request(rec, spec, model.popularity, context)
    except Exception:  # a request path that fails fails again on a real request, handled there
        logger.warning("warm-up request failed", exc_info=True)
        return
    logger.info("warmed up in %.2f s", time.perf_counter() - start)


def numba_max_threads() -> int:
    """The size of numba's thread pool (fixed when numba is imported)."""
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # set at import


def limit_threads(n: int) -> None:
    """Cap the thread pools of torch, faiss (OpenMP) and BLAS for this process, and numba's
    for the calling thread (numba's setting is per thread).

    A worker computes one request at a time on a small machine: library thread pools only
    fight each other (and the other workers) for the cores. Measured on the 2-core demo box
    with another process busy: 231 ms median per request with default pools, 56 ms capped.
    """
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba_max_threads()))
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:  # pragma: no cover - faiss is a dependency
        pass
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)

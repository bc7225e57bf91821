"""The inspector's data side, without any web framework: one user's request traced through the
loaded artifact (:mod:`funnelrec.pipeline.trace`), the user-id search, and what the page needs
to know about the artifact. ``funnelrec serve`` (``/inspect``, admin token) and ``funnelrec
inspect`` (offline) both call it; docs/inspector.md.

A served request and its trace read the same state: the artifact's history of the user plus
the events the store recorded after training (for the history and the ranker's log). The
trace calls every channel without time budgets, so a channel that a loaded server drops for
being slow is still shown here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import torch
from pydantic import Field

from funnelrec.errors import FunnelrecError
from funnelrec.pipeline.context import RequestContext
from funnelrec.pipeline.trace import ItemLabels, TraceRequest, trace_request
from funnelrec.serve.errors import RequestError
from funnelrec.serve.loading import LoadedModel
from funnelrec.serve.request import attributes_frame, check_request, event_frames, k_limit
from funnelrec.serve.schemas import Id as IdField
from funnelrec.serve.schemas import RecommendRequest
from funnelrec.serve.settings import MAX_K
from funnelrec.serve.store import EventStore

logger = logging.getLogger(__name__)

USER_SEARCH_LIMIT = 50


class InspectRequest(RecommendRequest):
    """``POST /inspect/api/trace``: a recommend request plus the item to explain."""

    why_not: IdField | None = Field(None, description="An item id: at which stage was it lost?")


def default_items_table(artifacts: Path) -> Path | None:
    """``ARTIFACTS/../data/items.parquet`` when it exists: where ``funnelrec run`` and
    ``demo`` write the items table beside the artifact (artifacts keep no titles)."""
    path = Path(artifacts).resolve().parent / "data" / "items.parquet"
    return path if path.is_file() else None


def read_labels(model: LoadedModel, items: Path | None) -> ItemLabels:
    """The artifact's categories plus the titles of the ``items`` table, when one is given.

    Raises:
        FunnelrecError: the items table cannot be read.
    """
    if items is None:
        return ItemLabels.of(model.recommender)
    from funnelrec.data.io import read_table
    from funnelrec.schema import ITEMS

    table, _ = read_table(items, ITEMS)
    return ItemLabels.of(model.recommender, table)


@dataclass
class InspectorSource:
    """What the inspector reads: the serving artifact (it may be swapped by a reload), the
    event store (None offline), the clock and the item labels (built once per artifact).

    Attributes:
        model: returns the artifact serving now.
        store: the service's event store, or None (offline: the artifact alone).
        now: the service's clock, or None (offline: the artifact's as-of time).
        items: an items table with titles, or None.
        events_per_request: the store's newest events a request reads (the service's
            ``store_events_per_request``).
        strict_items: raise when ``items`` cannot be read (it was asked for by name); else
            log it and show the artifact's categories only.
    """

    model: Callable[[], LoadedModel]
    store: Callable[[], EventStore] | None = None
    now: Callable[[], int] | None = None
    items: Path | None = None
    events_per_request: int = 500
    strict_items: bool = False
    _labels: dict[str, ItemLabels] = field(default_factory=dict)

    def labels(self, model: LoadedModel) -> ItemLabels:
        if model.artifact_id not in self._labels:
            try:
                self._labels = {model.artifact_id: read_labels(model, self.items)}
            except FunnelrecError as e:
                if self.strict_items:
                    raise
                # titles are a convenience: show the page without them
                logger.warning("inspector: items table not used: %s", e)
                self._labels = {model.artifact_id: ItemLabels.of(model.recommender)}
        return self._labels[model.artifact_id]


def _context(source: InspectorSource, model: LoadedModel, user_id: str) -> RequestContext:
    """The served request's state: the user's artifact history + the store's newer events."""
    rec = model.recommender
    user_idx = model.user_index.get(user_id)
    if user_idx is None:
        user_idx = int(rec.user_vocab.encode(pl.Series([user_id], dtype=pl.String))[0])
    history = model.history_index.for_user(user_idx)
    rank_log = model.prepared_log
    if source.store is not None:
        recent = source.store().recent(user_id, source.events_per_request)
        events = [e for e in recent if e.timestamp > model.cutoff]
        extra_history, extra_log = event_frames(rec, user_idx, events, model.item_index)
        if extra_history.height:
            history = pl.concat([history, extra_history])
        if rank_log is not None:
            rank_log = rank_log.with_extra(extra_log)
    return RequestContext(history=history, rank_log=rank_log)


def inspect_request(source: InspectorSource, body: InspectRequest) -> dict[str, Any]:
    """The trace of one request as JSON-safe data.

    Raises:
        RequestError: k out of range or unknown attribute names (422).
    """
    model = source.model()
    check_request(model.recommender, model.attribute_names, body.k, body.attributes, MAX_K)
    user_id = str(body.user_id)
    timestamp = body.timestamp
    if timestamp is None and source.now is not None:
        timestamp = source.now()
    request = TraceRequest(
        user_id=user_id,
        k=body.k,
        timestamp=timestamp,
        attributes=attributes_frame(body.attributes),
        tags=list(body.tags) if body.tags else None,
        scenario=body.scenario,
        why_not=None if body.why_not is None else str(body.why_not),
    )
    try:
        with torch.inference_mode():
            trace = trace_request(
                model.recommender,
                request,
                context=_context(source, model, user_id),
                labels=source.labels(model),
            )
    except FunnelrecError as e:
        raise RequestError(422, str(e)) from None
    return {"artifact_id": model.artifact_id, **trace.model_dump(mode="json")}


def search_users(model: LoadedModel, query: str, limit: int) -> list[str]:
    """Known user ids containing ``query`` (ids starting with it first), at most ``limit``."""
    query = query.strip()
    ids = model.user_index.keys()
    if not query:
        return sorted(ids, key=lambda u: (len(u), u))[:limit]
    starts = [u for u in ids if u.startswith(query)]
    inside = [u for u in ids if query in u and not u.startswith(query)]
    ordered = sorted(starts, key=lambda u: (len(u), u)) + sorted(inside, key=lambda u: (len(u), u))
    return ordered[:limit]


def artifact_meta(source: InspectorSource) -> dict[str, Any]:
    """What the page shows before any request: the artifact, its stages, its attribute names
    and onboarding categories, an example user and the largest k."""
    model = source.model()
    rec = model.recommender
    max_k, _ = k_limit(rec, MAX_K)
    ranker = rec.ranker
    return {
        "artifact_id": model.artifact_id,
        "users": len(model.user_index),
        "items": len(model.item_ids),
        "channels": list(rec.channels),
        "merge": rec.merge_config.method,
        "ranker": None if ranker is None else list(ranker.tasks),
        "preranker": rec.preranker is not None,
        "reranker": None if rec.reranker is None else rec.reranker.config.method,
        "attributes": list(model.attribute_names),
        "categories": rec.users.category_vocab.ids.cast(pl.String).to_list(),
        "max_k": max_k,
        "titles": source.labels(model).has_titles,
        "as_of": rec.as_of if source.now is None else source.now(),
    }

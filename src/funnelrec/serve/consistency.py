"""Online/offline consistency: replay logged requests through the offline pipeline and report
every difference, stage by stage.

The replay loads the artifact with ``load_recommender`` (what ``funnelrec recommend`` and the
evaluation use), appends the logged store events to the *full* history and rank log (no
per-request slices, no prepared log index), leaves out the channels the served request
dropped, and calls the same ``Recommender.run``. An unmodified deployment reports
nothing; a difference points at the stage that diverged (recall source/score, merge position,
``p_<task>``, fused score, final rank).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import torch

from funnelrec.pipeline.context import RequestContext
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.persist import load_recommender
from funnelrec.serve.featurelog import read_feature_log
from funnelrec.serve.loading import artifact_id
from funnelrec.serve.request import (
    LeftOutChannels,
    RequestSpec,
    event_frames,
    popularity_order,
    response_columns,
    run_request,
)
from funnelrec.serve.store import Event


@dataclass(frozen=True)
class Mismatch:
    """One difference between a logged request and its replay."""

    request_id: str
    line: int
    part: str  # "items" (the returned list) or "pool" (the logged ranked pool)
    column: str  # item_id (membership/order), source, merged_rank, p_<task>, score, rank, ...
    item_id: Any
    logged: Any
    replayed: Any

    def describe(self) -> str:
        return (
            f"line {self.line} request {self.request_id}: {self.part}.{self.column}"
            f"{'' if self.item_id is None else f' item {self.item_id}'}: logged {self.logged!r}, "
            f"replayed {self.replayed!r}"
        )


@dataclass(frozen=True)
class ConsistencyReport:
    """What :func:`replay_feature_log` found."""

    log: Path
    artifacts: Path
    artifact_id: str
    requests: int
    replayed: int
    skipped: dict[str, int]
    mismatched_requests: int
    mismatches: list[Mismatch] = field(default_factory=list)
    max_abs_diff: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.mismatched_requests == 0

    def by_column(self) -> dict[str, int]:
        return dict(Counter(f"{m.part}.{m.column}" for m in self.mismatches))


def _close(a: Any, b: Any, atol: float, rtol: float) -> tuple[bool, float]:
    if a is None or b is None:
        return a is None and b is None, 0.0
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)
        if math.isnan(fa) and math.isnan(fb):
            return True, 0.0
        diff = abs(fa - fb)
        return diff <= atol + rtol * abs(fa), diff
    return a == b, 0.0


def _compare(
    request_id: str,
    line: int,
    part: str,
    logged: dict[str, list],
    replayed: dict[str, list],
    *,
    atol: float,
    rtol: float,
    worst: dict[str, float],
) -> list[Mismatch]:
    """Items (membership and order) and every logged column of the items both lists hold."""
    out: list[Mismatch] = []
    want = [str(i) for i in logged["item_id"]]
    got = [str(i) for i in replayed["item_id"]]
    if want != got:
        out.append(Mismatch(request_id, line, part, "item_id", None, want, got))
    position = {item: n for n, item in enumerate(got)}
    for column, values in logged.items():
        if column == "item_id":
            continue
        if column not in replayed:
            out.append(Mismatch(request_id, line, part, column, None, "present", "missing"))
            continue
        for n, item in enumerate(want):
            if item not in position:
                continue
            a, b = values[n], replayed[column][position[item]]
            ok, diff = _close(a, b, atol, rtol)
            worst[column] = max(worst.get(column, 0.0), diff)
            if not ok:
                out.append(Mismatch(request_id, line, part, column, item, a, b))
    return out


def replay_feature_log(
    artifacts: Path,
    log_path: Path,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    limit: int | None = None,
) -> ConsistencyReport:
    """Replay every logged request of ``artifacts`` through the offline pipeline.

    Args:
        artifacts: the artifact folder the requests were served from.
        log_path: the service's feature log (JSON lines).
        atol, rtol: float tolerance (the service computes one request at a time with one torch
            thread; tiny differences can come from a different thread count).
        limit: replay at most this many requests.

    Returns:
        A report; ``ok`` when no replayed request differs. Requests served from another
        artifact are skipped and counted.

    Raises:
        FunnelrecError: the artifact fails its hash check, or the log is unreadable.
    """
    artifacts = Path(artifacts)
    replay = _Replay(load_recommender(artifacts), artifact_id(artifacts))
    skipped: Counter[str] = Counter()
    mismatches: list[Mismatch] = []
    worst: dict[str, float] = {}
    requests = replayed = mismatched = 0
    for line, record in read_feature_log(log_path):
        requests += 1
        reason = replay.skip_reason(record, limit is not None and replayed >= limit)
        if reason is not None:
            skipped[reason] += 1
            continue
        found = replay.compare(line, record, atol=atol, rtol=rtol, worst=worst)
        replayed += 1
        if found:
            mismatched += 1
            mismatches += found
    return ConsistencyReport(
        log=Path(log_path),
        artifacts=artifacts,
        artifact_id=replay.artifact_id,
        requests=requests,
        replayed=replayed,
        skipped=dict(skipped),
        mismatched_requests=mismatched,
        mismatches=mismatches,
        max_abs_diff=worst,
    )


def _spec(record: dict[str, Any]) -> RequestSpec:
    """The logged request as the service ran it."""
    events = tuple(
        Event(record["user_id"], str(i), str(ev), int(ts), float(v))
        for i, ev, ts, v in record["events"]
    )
    return RequestSpec(
        record["user_id"],
        int(record["k"]),
        int(record["timestamp"]),
        record.get("attributes"),
        record.get("tags"),
        events,
        tuple(record.get("dropped") or ()),
        bool(record.get("ranker_failed")),
        record.get("scenario"),
    )


class _Replay:
    """One artifact, loaded plainly, replaying logged requests."""

    def __init__(self, recommender: Funnel, artifact: str) -> None:
        self.rec = recommender
        self.artifact_id = artifact
        self.item_ids = recommender.item_vocab.ids.to_list()
        self.item_index = {str(i): n for n, i in enumerate(self.item_ids)}
        self.popularity = popularity_order(recommender)

    def skip_reason(self, record: dict[str, Any], over_limit: bool) -> str | None:
        if over_limit:
            return "over limit"
        if record["artifact_id"] != self.artifact_id:
            return f"served from artifact {record['artifact_id']}"
        if record.get("ranker_failed") and record.get("fallback"):
            return "served popular items after an error"
        return None

    def context(self, spec: RequestSpec) -> RequestContext:
        """The full tables plus the logged store events (no per-request slices, no prepared
        log index), the channels the served request dropped left out."""
        rec = self.rec
        user_idx = int(rec.user_vocab.encode(pl.Series([spec.user_id], dtype=pl.String))[0])
        extra_history, extra_log = event_frames(rec, user_idx, spec.events, self.item_index)
        rank_log = None
        if rec.rank_log is not None:
            rank_log = pl.concat([rec.rank_log, extra_log.select(rec.rank_log.columns)])
        return RequestContext(
            history=pl.concat([rec.history, extra_history]),
            rank_log=rank_log,
            channels=LeftOutChannels(frozenset(spec.dropped)),
            use_ranker=not spec.ranker_failed,
        )

    def compare(
        self,
        line: int,
        record: dict[str, Any],
        *,
        atol: float,
        rtol: float,
        worst: dict[str, float],
    ) -> list[Mismatch]:
        """Replay one logged request; every difference from what was served."""
        spec = _spec(record)
        with torch.inference_mode():
            served, _ = run_request(self.rec, spec, self.popularity, self.context(spec))
        rid = record["request_id"]
        found: list[Mismatch] = []
        if bool(record.get("fallback")) != served.fallback:
            found.append(
                Mismatch(rid, line, "items", "fallback", None, record["fallback"], served.fallback)
            )
        replayed = response_columns(served.top, self.item_ids)
        found += _compare(
            rid, line, "items", record["items"], replayed, atol=atol, rtol=rtol, worst=worst
        )
        if record.get("pool") is not None:
            depth = len(record["pool"]["item_id"])
            pool = response_columns(served.pool.head(depth), self.item_ids)
            found += _compare(
                rid, line, "pool", record["pool"], pool, atol=atol, rtol=rtol, worst=worst
            )
        return found

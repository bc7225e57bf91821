"""``funnelrec inspect ARTIFACTS``: the browser inspector on an artifact, offline (a local
server with only the inspector), or one user's trace as text tables (``--user``, no server).
docs/inspector.md."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from funnelrec.errors import ConfigError

Emit = Callable[[str], None]
CHANNEL_ROWS = 10
MERGED_ROWS = 15
RANKED_ROWS = 15
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class InspectOptions:
    """The command's options (``attributes``: NAME=VALUE strings, ``tags``: categories)."""

    artifacts: Path
    user: str | None = None
    why_not: str | None = None
    k: int = 10
    port: int = 8765
    items: Path | None = None
    self_check: bool = True
    attributes: Sequence[str] = ()
    tags: Sequence[str] = ()


def _attributes(pairs: Sequence[str]) -> dict[str, str] | None:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--attribute takes NAME=VALUE, got {pair[:40]!r}")
        out[name] = value
    return out or None


def _source(options: InspectOptions) -> Any:
    """Load + self-check the artifact (as serve does) and wrap it for the inspector."""
    from funnelrec.serve.inspector import InspectorSource, default_items_table
    from funnelrec.serve.loading import load_for_serving

    model = load_for_serving(options.artifacts, check=options.self_check)
    # A table named with --items must be readable; the default one is a convenience.
    strict = options.items is not None
    items = options.items or default_items_table(options.artifacts)
    source = InspectorSource(model=lambda: model, items=items, strict_items=strict)
    source.labels(model)  # read the table now: a bad one fails before any request
    return source


def print_trace(options: InspectOptions, emit: Emit) -> dict[str, Any]:
    """Trace ``options.user`` and print every stage as text; returns the trace.

    Raises:
        FunnelrecError: a refused artifact, an unreadable items table, a bad k or attribute.
    """
    from funnelrec.serve.inspector import InspectRequest, inspect_request

    if options.k < 1:
        raise ConfigError(f"--k must be at least 1, got {options.k}")
    try:
        body = InspectRequest(
            user_id=str(options.user),
            k=options.k,
            attributes=_attributes(options.attributes),
            tags=list(options.tags) or None,
            why_not=options.why_not,
        )
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"--{first['loc'][0]}: {first['msg']}".replace("_", "-")) from None
    trace = inspect_request(_source(options), body)
    render_text(trace, emit)
    return trace


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Left-aligned text columns (``-`` for missing values, floats to 4 significant digits)."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return ["  " + line for line in lines]


def _label(entry: dict[str, Any]) -> str:
    return str(entry["item_id"]) + (f" [{entry['category']}]" if entry.get("category") else "")


def render_text(trace: dict[str, Any], emit: Emit) -> None:
    """The trace as text: user, channels, merge, ranking, re-ranking, final list, why-not."""
    user = trace["user"]
    known = "known" if user["known"] else "cold (unknown user)"
    emit(f"user {user['user_id']}: {known}, {user['history_len']} history items; k = {trace['k']}")
    if user["history"]:
        recent = ", ".join(_label(h) for h in user["history"][:10])
        emit(f"  recent history (newest first): {recent}")
    emit("recall channels:")
    for channel in trace["channels"]:
        top = ", ".join(str(e["item_id"]) for e in channel["items"][:CHANNEL_ROWS])
        emit(
            f"  {channel['name']:<12} returned {channel['returned']:>4}, merged from it "
            f"{channel['merged_from']:>4}: {top or '-'}"
        )
    merge = trace["merge"]
    quotas = ", ".join(f"{c} {q}" for c, q in merge["quotas"].items()) or "-"
    emit(f"merge: {merge['method']}, merge.k {merge['k']}, {merge['size']} merged; quotas {quotas}")
    rows = [
        [e["merged_rank"], _label(e), e["source"], e["source_rank"], e["sources"]]
        for e in merge["items"][:MERGED_ROWS]
    ]
    for line in _table(["#", "item", "source", "src rank", "sources"], rows):
        emit(line)
    _render_rank(trace["rank"], emit)
    _render_rerank(trace, emit)
    emit("final list:")
    rows = [[e["rank"], _label(e), e["score"], e["source"]] for e in trace["final"]]
    for line in _table(["#", "item", "score", "source"], rows):
        emit(line)
    answer = trace.get("why_not")
    if answer:
        emit(f"why not {answer['item_id']}: {answer['verdict']} (stage {answer['stage']})")
        emit(f"  {answer['message']}")


def _render_rank(rank: dict[str, Any], emit: Emit) -> None:
    if not rank["enabled"]:
        emit("ranking: off (the merge order is the ranking)")
        return
    counts = ", ".join(f"{s} {n}" for s, n in rank["counts"].items())
    emit(f"ranking: tasks {', '.join(rank['tasks'])}; fusion {rank['fusion']}; {counts}")
    tasks = rank["tasks"]
    rows = [
        [e["rank"], _label(e), e["merged_rank"], e["status"]]
        + [e["probabilities"].get(t) for t in tasks]
        + [e["score"]]
        for e in rank["items"][:RANKED_ROWS]
    ]
    for line in _table(
        ["#", "item", "merged", "status", *(f"p_{t}" for t in tasks), "score"], rows
    ):
        emit(line)


def _render_rerank(trace: dict[str, Any], emit: Emit) -> None:
    rerank = trace["rerank"]
    if not rerank["enabled"]:
        emit("re-ranking: off")
        return
    emit(f"re-ranking: {rerank['method']}, pool {rerank['pool']}, slack {rerank['slack']}")
    for note in rerank["notes"]:
        emit(f"  note: {note}")
    rows = [
        [e["rank"], _label(e), e["pre_rerank_rank"], e["diversified_rank"]] for e in rerank["items"]
    ]
    for line in _table(["#", "item", "ranked", "diversified"], rows):
        emit(line)
    for title, changes in (
        ("demoted for diversity", rerank["demoted"]),
        ("rules fired", rerank["rules_fired"]),
    ):
        emit(f"  {title}: {len(changes)}")
        for change in changes:
            emit(f"    {change['item_id']}: {change['outcome']}: {change['detail']}")


def serve_inspector(options: InspectOptions, emit: Emit) -> None:
    """Load the artifact and serve only the inspector on 127.0.0.1 until interrupted.

    The server binds the loopback interface, yet every local user and process (and any web
    page open in a local browser) can reach loopback ports, and a trace shows a user's
    history: so it asks for a random token, printed once in the URL's fragment (which the
    browser never sends to a server or writes into access logs; the page moves it into
    sessionStorage and out of the address bar).
    """
    import uvicorn

    from funnelrec.serve.app import create_inspector_app

    source = _source(options)
    token = secrets.token_urlsafe(24)
    emit(f"funnelrec inspect: http://{LOOPBACK}:{options.port}/inspect#token={token}")
    emit("  (Ctrl-C stops it; the token is valid only for this run)")
    app = create_inspector_app(source, token)
    uvicorn.run(app, host=LOOPBACK, port=options.port, log_level="warning", access_log=False)

"""A Funnel to and from the artifact format (:mod:`funnelrec.artifacts`).

Saving records a golden set (requests with their results) next to the state; loading
rebuilds every part from its state arrays (no pickle, no code from the directory).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from funnelrec.artifacts import ArtifactContents, artifact_errors, read_artifact, write_artifact
from funnelrec.data.state import prefixed
from funnelrec.data.user_attributes import UserAttributeEncoder
from funnelrec.data.vocab import Vocabulary
from funnelrec.pipeline.context import ItemContext, UserContext
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.golden import golden_set
from funnelrec.rank.prerank import PreRanker
from funnelrec.rank.ranker import Ranker
from funnelrec.recall.registry import retriever_from_state

PRERANK = "prerank."
"""Prefix of the pre-ranker's arrays in the ranker's state file (``rank/ranker.npz``)."""


def recommender_contents(recommender: Funnel) -> ArtifactContents:
    """Everything ``recommender`` is, as plain arrays and tables (with a fresh golden set)."""
    ctx = recommender.users
    users = {
        "codes": ctx.codes,
        "categories": ctx.category_vocab.ids.cast(pl.String).to_numpy().astype(np.str_),
        **{f"encoder_{k}": v for k, v in ctx.encoder.state().items()},
    }
    items = {
        name: value
        for name, value in (
            ("category", recommender.items.category),
            ("created_at", recommender.items.created_at),
        )
        if value is not None
    }
    ranker = None if recommender.ranker is None else recommender.ranker.state()
    if ranker is not None and recommender.preranker is not None:
        # The pre-ranker lives next to the ranker it was distilled from, in the same file.
        prerank = recommender.preranker.state()
        ranker = {**ranker, **{PRERANK + k: v for k, v in prerank.items()}}
    return ArtifactContents(
        config=recommender.config,
        user_vocab=recommender.user_vocab,
        item_vocab=recommender.item_vocab,
        history=recommender.history,
        users=users,
        items=items,
        channels={name: channel.state() for name, channel in recommender.channels.items()},
        ranker=ranker,
        rank_log=recommender.rank_log if ranker is not None else None,
        golden=golden_set(recommender),
        guards=[]
        if recommender.fit_report is None
        else [d.as_dict() for d in recommender.fit_report.guards],
    )


def save_recommender(recommender: Funnel, out_dir: Path) -> Path:
    """Write ``recommender`` to ``out_dir`` atomically (signed when ``FUNNELREC_ARTIFACT_KEY``
    is set); returns the manifest path. A failed or killed save leaves the previous artifact
    in ``out_dir`` as it was."""
    return write_artifact(recommender_contents(recommender), Path(out_dir))


def recommender_from_contents(
    contents: ArtifactContents,
    cls: type[Funnel] = Funnel,
) -> Funnel:
    """Rebuild a Funnel from what :func:`recommender_contents` produced."""
    config = contents.config
    channels = {
        name: retriever_from_state(config.recall.channels[name], state)
        for name, state in contents.channels.items()
    }
    arrays = contents.users
    users = UserContext(
        UserAttributeEncoder.from_state(prefixed(arrays, "encoder_")),
        arrays["codes"],
        Vocabulary(pl.Series("id", arrays["categories"].tolist(), dtype=pl.String)),
    )
    items = ItemContext(contents.items.get("category"), contents.items.get("created_at"))
    recommender = cls(
        config,
        channels,
        contents.user_vocab,
        contents.item_vocab,
        contents.history,
        users,
        items,
    )
    if contents.ranker is not None and contents.rank_log is not None:
        recommender.set_ranker(Ranker.from_state(config.rank, contents.ranker), contents.rank_log)
        prerank = prefixed(contents.ranker, PRERANK)
        if prerank:
            recommender.set_preranker(PreRanker.from_state(config.rank.prerank, prerank))
    return recommender


def _rebuild(artifacts_dir: Path, contents: ArtifactContents, cls: type[Funnel]) -> Funnel:
    # Well-formed files can still hold arrays that do not fit together (a channel's state
    # from another artifact, a truncated ranker): one line, not a traceback from deep inside.
    with artifact_errors(artifacts_dir):
        return recommender_from_contents(contents, cls)


def load_recommender(
    artifacts_dir: Path,
    cls: type[Funnel] = Funnel,
) -> Funnel:
    """Load and verify an artifact directory written by :func:`save_recommender`.

    Raises:
        FunnelrecError: a refused artifact (signature, hashes, paths, unreadable files).
    """
    return _rebuild(Path(artifacts_dir), read_artifact(Path(artifacts_dir)), cls)


def load_with_golden(artifacts_dir: Path) -> tuple[Funnel, dict | None]:
    """The recommender and its golden set (None for artifacts saved without one)."""
    contents = read_artifact(Path(artifacts_dir))
    return _rebuild(Path(artifacts_dir), contents, Funnel), contents.golden


def load_golden(artifacts_dir: Path) -> dict | None:
    """The artifact's golden set, verified with every other file; None when it has none."""
    return read_artifact(Path(artifacts_dir)).golden

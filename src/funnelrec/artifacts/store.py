"""Artifact directory layout::

    manifest.json        format version, funnelrec version, sha256 of every file below
    config.json          the resolved ExperimentConfig
    vocab/users.parquet  external user ids in index order
    vocab/items.parquet  external item ids in index order
    history.parquet      positives (user_idx, item_idx, timestamp): users' histories
    users.npz            user attribute codes + their vocabularies, category vocabulary
    items.npz            item categories and creation times (what the re-ranker reads)
    channels/<name>.npz  each channel's state arrays (np.savez, loaded with allow_pickle=False)
    rank/ranker.npz      the ranker's state (featurizer, model weights / booster texts, fusion)
    rank/log.parquet     the interaction log its point-in-time features read
    golden.json          golden set: 32 requests with their top-k items and scores, re-scored
                         by the serving self-check (funnelrec.artifacts.golden)

Loading verifies every hash first and never executes code from the directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl

from funnelrec import __version__
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.vocab import Vocabulary
from funnelrec.errors import FunnelrecError
from funnelrec.data.user_attributes import UserAttributeEncoder
from funnelrec.pipeline.recommender import ItemContext, Recommender, UserContext
from funnelrec.rank.ranker import Ranker
from funnelrec.recall.factory import retriever_from_state
from funnelrec.artifacts.golden import GOLDEN_FILE, golden_set

FORMAT_VERSION = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_recommender(recommender: Recommender, out_dir: Path) -> Path:
    """Write ``recommender`` to ``out_dir`` (created); returns the manifest path."""
    out_dir = Path(out_dir)
    (out_dir / "vocab").mkdir(parents=True, exist_ok=True)
    (out_dir / "channels").mkdir(exist_ok=True)
    files: list[Path] = []
    config_path = out_dir / "config.json"
    config_path.write_text(recommender.config.model_dump_json(indent=2))
    files.append(config_path)
    for name, vocab in (("users", recommender.user_vocab), ("items", recommender.item_vocab)):
        path = out_dir / "vocab" / f"{name}.parquet"
        vocab.save(path)
        files.append(path)
    history_path = out_dir / "history.parquet"
    recommender.history.write_parquet(history_path)
    files.append(history_path)
    users_path = out_dir / "users.npz"
    ctx = recommender.users
    np.savez(
        users_path,
        codes=ctx.codes,
        categories=ctx.category_vocab.ids.cast(pl.String).to_numpy().astype(np.str_),
        **{f"encoder_{k}": v for k, v in ctx.encoder.state().items()},
    )
    files.append(users_path)
    items_path = out_dir / "items.npz"
    item_ctx = recommender.items
    np.savez(
        items_path,
        **{
            name: value
            for name, value in (
                ("category", item_ctx.category),
                ("created_at", item_ctx.created_at),
            )
            if value is not None
        },
    )
    files.append(items_path)
    for name, channel in recommender.channels.items():
        path = out_dir / "channels" / f"{name}.npz"
        np.savez(path, **channel.state())
        files.append(path)
    if recommender.ranker is not None and recommender.rank_log is not None:
        (out_dir / "rank").mkdir(exist_ok=True)
        ranker_path = out_dir / "rank" / "ranker.npz"
        np.savez(ranker_path, **recommender.ranker.state())
        log_path = out_dir / "rank" / "log.parquet"
        recommender.rank_log.write_parquet(log_path)
        files += [ranker_path, log_path]
    golden_path = out_dir / GOLDEN_FILE
    golden_path.write_text(json.dumps(golden_set(recommender)))
    files.append(golden_path)
    manifest = {
        "format_version": FORMAT_VERSION,
        "funnelrec_version": __version__,
        "files": {str(p.relative_to(out_dir)): _sha256(p) for p in files},
    }
    manifest_path = out_dir / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return manifest_path


def load_recommender(artifacts_dir: Path) -> Recommender:
    """Load and verify an artifact directory written by :func:`save_recommender`."""
    root = Path(artifacts_dir)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise FunnelrecError(f"{root}: not an artifact directory (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError) as e:
        raise FunnelrecError(f"{manifest_path}: unreadable manifest ({e})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FunnelrecError(
            f"{manifest_path}: artifact format {manifest.get('format_version')} is not "
            f"supported (this funnelrec reads format {FORMAT_VERSION})"
        )
    for rel, expected in files.items():
        path = root / rel
        if not path.is_file():
            raise FunnelrecError(f"{path}: listed in the manifest but missing")
        if _sha256(path) != expected:
            raise FunnelrecError(f"{path}: content does not match the manifest hash")
    config = ExperimentConfig.model_validate_json((root / "config.json").read_text())
    channels = {}
    for name, channel_config in config.recall.channels.items():
        if f"channels/{name}.npz" not in files:
            continue  # skipped at fit time (its data was missing)
        with np.load(root / "channels" / f"{name}.npz", allow_pickle=False) as npz:
            state = {key: npz[key] for key in npz.files}
        channels[name] = retriever_from_state(channel_config, state)
    with np.load(root / "users.npz", allow_pickle=False) as npz:
        users = UserContext(
            UserAttributeEncoder.from_state(
                {k.removeprefix("encoder_"): npz[k] for k in npz.files if k.startswith("encoder_")}
            ),
            npz["codes"],
            Vocabulary(pl.Series("id", npz["categories"].tolist(), dtype=pl.String)),
        )
    items = ItemContext(None, None)
    if "items.npz" in files:  # absent from artifacts written before re-ranking existed
        with np.load(root / "items.npz", allow_pickle=False) as npz:
            items = ItemContext(
                npz["category"] if "category" in npz.files else None,
                npz["created_at"] if "created_at" in npz.files else None,
            )
    recommender = Recommender(
        config,
        channels,
        Vocabulary.load(root / "vocab" / "users.parquet"),
        Vocabulary.load(root / "vocab" / "items.parquet"),
        pl.read_parquet(root / "history.parquet"),
        users,
        items,
    )
    if "rank/ranker.npz" in files:
        with np.load(root / "rank" / "ranker.npz", allow_pickle=False) as npz:
            state = {key: npz[key] for key in npz.files}
        recommender.attach_ranker(
            Ranker.from_state(config.rank, state), pl.read_parquet(root / "rank" / "log.parquet")
        )
    return recommender


def load_golden(artifacts_dir: Path) -> dict | None:
    """The artifact's golden set (``golden.json``), or None for artifacts saved without one.

    Call after :func:`load_recommender`, which verified its hash with the others.
    """
    root = Path(artifacts_dir)
    manifest = json.loads((root / "manifest.json").read_text())
    if GOLDEN_FILE not in manifest["files"]:
        return None
    try:
        return json.loads((root / GOLDEN_FILE).read_text())
    except json.JSONDecodeError as e:
        raise FunnelrecError(f"{root / GOLDEN_FILE}: unreadable golden set ({e})") from None

"""The artifact directory format: what a fitted funnel is on disk, verified on read.

This layer knows files, hashes and arrays, not the objects built from them (the pipeline turns
a Recommender into :class:`ArtifactContents` and back), so it sits below ``pipeline`` and the
package graph stays one-way. Layout::

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
    golden.json          golden set: requests with their top-k items and scores, re-scored
                         by the self-check (funnelrec.pipeline.golden)

Reading verifies every hash first and never executes code from the directory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec import __version__
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.vocab import Vocabulary
from funnelrec.errors import FunnelrecError

FORMAT_VERSION = 1
GOLDEN_FILE = "golden.json"

Arrays = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class ArtifactContents:
    """Everything an artifact directory holds, as plain values.

    Attributes:
        config: the resolved configuration.
        user_vocab / item_vocab: external ids in index order.
        history: positives ``user_idx, item_idx, timestamp``.
        users: user-side arrays (attribute codes, encoder state, category vocabulary).
        items: item-side arrays (``category``, ``created_at``; either may be absent).
        channels: each fitted channel's state arrays, by channel name.
        ranker: the ranker's state arrays, or None without a ranker.
        rank_log: the log the ranker's features read, or None without a ranker.
        golden: the golden set (JSON-able), or None.
        guards: the do-no-harm decisions of the fit that made it (recorded in the manifest).
    """

    config: ExperimentConfig
    user_vocab: Vocabulary
    item_vocab: Vocabulary
    history: pl.DataFrame
    users: Arrays
    items: Arrays
    channels: dict[str, Arrays]
    ranker: Arrays | None = None
    rank_log: pl.DataFrame | None = None
    golden: dict[str, Any] | None = field(default=None, compare=False)
    guards: list[dict[str, Any]] = field(default_factory=list, compare=False)


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_artifact(contents: ArtifactContents, out_dir: Path) -> Path:
    """Write ``contents`` to ``out_dir`` (created); returns the manifest path."""
    out_dir = Path(out_dir)
    (out_dir / "vocab").mkdir(parents=True, exist_ok=True)
    (out_dir / "channels").mkdir(exist_ok=True)
    files: list[Path] = []

    def put(rel: str) -> Path:
        files.append(out_dir / rel)
        return out_dir / rel

    put("config.json").write_text(contents.config.model_dump_json(indent=2))
    contents.user_vocab.save(put("vocab/users.parquet"))
    contents.item_vocab.save(put("vocab/items.parquet"))
    contents.history.write_parquet(put("history.parquet"))
    np.savez(put("users.npz"), **contents.users)  # type: ignore[arg-type]
    np.savez(put("items.npz"), **contents.items)  # type: ignore[arg-type]
    for name, state in contents.channels.items():
        np.savez(put(f"channels/{name}.npz"), **state)  # type: ignore[arg-type]
    if contents.ranker is not None and contents.rank_log is not None:
        (out_dir / "rank").mkdir(exist_ok=True)
        np.savez(put("rank/ranker.npz"), **contents.ranker)  # type: ignore[arg-type]
        contents.rank_log.write_parquet(put("rank/log.parquet"))
    if contents.golden is not None:
        put(GOLDEN_FILE).write_text(json.dumps(contents.golden))
    manifest = {
        "format_version": FORMAT_VERSION,
        "funnelrec_version": __version__,
        "files": {str(p.relative_to(out_dir)): sha256(p) for p in files},
        "guards": contents.guards,
    }
    manifest_path = out_dir / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return manifest_path


def read_manifest(root: Path) -> dict[str, str]:
    """The manifest's ``{relative path: sha256}``, after checking every file against it.

    Raises:
        FunnelrecError: not an artifact directory, an unreadable or unsupported manifest, a
            listed file missing, or a hash mismatch.
    """
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise FunnelrecError(f"{root}: not an artifact directory (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, str] = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
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
        if sha256(path) != expected:
            raise FunnelrecError(f"{path}: content does not match the manifest hash")
    return files


def _arrays(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def read_artifact(artifacts_dir: Path) -> ArtifactContents:
    """Read and verify an artifact directory written by :func:`write_artifact`."""
    root = Path(artifacts_dir)
    files = read_manifest(root)
    config = ExperimentConfig.model_validate_json((root / "config.json").read_text())
    channels = {
        name: _arrays(root / "channels" / f"{name}.npz")
        for name in config.recall.channels
        if f"channels/{name}.npz" in files  # absent: skipped at fit time (missing input)
    }
    ranker = rank_log = None
    if "rank/ranker.npz" in files:
        ranker = _arrays(root / "rank" / "ranker.npz")
        rank_log = pl.read_parquet(root / "rank" / "log.parquet")
    golden = None
    if GOLDEN_FILE in files:
        try:
            golden = json.loads((root / GOLDEN_FILE).read_text())
        except json.JSONDecodeError as e:
            raise FunnelrecError(f"{root / GOLDEN_FILE}: unreadable golden set ({e})") from None
    return ArtifactContents(
        config=config,
        user_vocab=Vocabulary.load(root / "vocab" / "users.parquet"),
        item_vocab=Vocabulary.load(root / "vocab" / "items.parquet"),
        history=pl.read_parquet(root / "history.parquet"),
        users=_arrays(root / "users.npz"),
        # absent from artifacts written before re-ranking existed
        items=_arrays(root / "items.npz") if "items.npz" in files else {},
        channels=channels,
        ranker=ranker,
        rank_log=rank_log,
        golden=golden,
    )

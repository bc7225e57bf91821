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
    manifest.sig         HMAC-SHA256 of manifest.json when FUNNELREC_ARTIFACT_KEY is set
                         (funnelrec.artifacts.signing)

Writing is atomic: the files go to a hidden sibling folder that is renamed into place once
complete, so a run killed while writing leaves the previous artifact as it was. Reading checks
the signature (with a key configured), confines every manifest entry to the folder, verifies
every hash first, never executes code from the directory, and reports any unreadable file as
one line (:class:`~funnelrec.errors.FunnelrecError`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec import __version__
from funnelrec.artifacts.signing import KEY_ENV, verify_signature, write_signature
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.vocab import Vocabulary
from funnelrec.errors import FunnelrecError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
GOLDEN_FILE = "golden.json"
MANIFEST_FILE = "manifest.json"
# Read unconditionally by read_artifact: each must be listed (hashed, and signed with it).
REQUIRED_FILES = (
    "config.json",
    "vocab/users.parquet",
    "vocab/items.parquet",
    "history.parquet",
    "users.npz",
)

Arrays = dict[str, NDArray[Any]]
T = TypeVar("T")


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
    """Write ``contents`` to ``out_dir`` atomically; returns the manifest path.

    The files are written to a hidden sibling folder (``.NAME.tmp-*``) that replaces
    ``out_dir`` only once complete (the previous artifact is renamed aside, then removed), so a
    run that fails or is killed while writing leaves the previous artifact loadable; a killed
    run leaves its ``.NAME.tmp-*`` folder behind.

    Raises:
        FunnelrecError: ``out_dir`` exists, is not empty and is not an artifact folder (it
            would be replaced as a whole).
    """
    out_dir = Path(out_dir)
    # Resolved: "." or "x/.." have no name to put a sibling next to, and a symlinked folder
    # is replaced where it really is (the link keeps pointing at the new artifact).
    target = out_dir.resolve()
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    tmp.mkdir()  # not tempfile.mkdtemp: its 0700 mode would hide the artifact from a server
    try:
        signed = _write_files(contents, tmp)
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not signed:
        logger.warning("%s: written unsigned (%s is not set)", out_dir, KEY_ENV)
    return out_dir / MANIFEST_FILE


def _check_replaceable(out_dir: Path) -> None:
    """Writing replaces the whole folder: refuse one that holds anything but an artifact."""
    if out_dir == Path(out_dir.anchor):
        raise FunnelrecError(f"{out_dir}: the file-system root cannot be an artifact folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise FunnelrecError(f"{out_dir}: exists and is not a folder; refusing to replace it")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
        raise FunnelrecError(
            f"{out_dir}: exists and is not an artifact folder (no {MANIFEST_FILE}); refusing "
            "to replace it, choose another folder"
        )


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Put the complete ``tmp`` at ``out_dir``. Between the two renames (microseconds) the
    previous artifact exists only as ``.NAME.old-*``; it is never partially overwritten."""
    if not out_dir.exists():
        tmp.rename(out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:12]}")
    out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_files(contents: ArtifactContents, out_dir: Path) -> bool:
    """Every file, the manifest and (with a key) its signature; True when signed."""
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
        "files": {p.relative_to(out_dir).as_posix(): sha256(p) for p in files},
        "guards": contents.guards,
    }
    raw = json.dumps(manifest, indent=2).encode()
    (out_dir / MANIFEST_FILE).write_bytes(raw)
    return write_signature(out_dir, raw)


def _confined(root: Path, real_root: Path, rel: str) -> Path:
    """``root / rel`` when ``rel`` names a file inside the folder (no absolute path, no
    ``..``, no symlink leading out); a manifest is data, never a list of paths to trust."""
    pure = PurePosixPath(rel)
    if not rel or pure.is_absolute() or ".." in pure.parts or "\\" in rel or "\x00" in rel:
        raise FunnelrecError(f"{root}: manifest entry {rel!r} is not a path inside the artifact")
    path = root / rel
    try:
        inside = path.resolve().is_relative_to(real_root)
    except (OSError, RuntimeError):  # a symlink loop, an unreadable link
        inside = False
    if not inside:
        raise FunnelrecError(f"{root}: manifest entry {rel!r} leads outside the artifact folder")
    return path


def _parse_manifest(manifest_path: Path, raw: bytes) -> dict[str, str]:
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise FunnelrecError(f"{manifest_path}: unreadable manifest ({e})") from None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise FunnelrecError(f"{manifest_path}: unreadable manifest (files: not name -> hash)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FunnelrecError(
            f"{manifest_path}: artifact format {manifest.get('format_version')} is not "
            f"supported (this funnelrec reads format {FORMAT_VERSION})"
        )
    missing = [rel for rel in REQUIRED_FILES if rel not in files]
    if "rank/ranker.npz" in files and "rank/log.parquet" not in files:
        missing.append("rank/log.parquet")
    if missing:
        raise FunnelrecError(f"{manifest_path}: required file(s) not listed: {', '.join(missing)}")
    return files


def read_manifest(root: Path) -> dict[str, str]:
    """The manifest's ``{relative path: sha256}``, after checking the signature (with a key
    configured) and every file against it.

    Raises:
        FunnelrecError: not an artifact directory, an unreadable or unsupported manifest, a
            missing or wrong signature, an entry outside the folder, a required file not
            listed, a listed file missing, or a hash mismatch.
    """
    root = Path(root)
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FunnelrecError(f"{root}: not an artifact directory (no manifest.json)")
    real_root = root.resolve()
    _confined(root, real_root, MANIFEST_FILE)
    raw = manifest_path.read_bytes()  # one read: the signature and the parse see the same bytes
    verify_signature(root, raw)
    files = _parse_manifest(manifest_path, raw)
    for rel, expected in files.items():
        path = _confined(root, real_root, rel)
        if not path.is_file():
            raise FunnelrecError(f"{path}: listed in the manifest but missing")
        if sha256(path) != expected:
            raise FunnelrecError(f"{path}: content does not match the manifest hash")
    return files


@contextmanager
def artifact_errors(where: Path | str) -> Iterator[None]:
    """Turn any exception raised while decoding an artifact into one :class:`FunnelrecError`
    line naming ``where``.

    Hash checks only prove a file is the one listed; a file that was corrupted and re-hashed
    (or a well-formed file with the wrong arrays) fails inside numpy, polars, pydantic or a
    model's ``from_state`` with any exception type, and the CLI must still answer in one line.
    """
    try:
        yield
    except FunnelrecError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise FunnelrecError(
            f"{where}: unreadable or inconsistent artifact ({type(e).__name__}: {first})"
        ) from None


def _read(root: Path, rel: str, reader: Callable[[Path], T]) -> T:
    with artifact_errors(root / rel):
        return reader(root / rel)


def _arrays(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _golden(path: Path) -> dict[str, Any]:
    golden = json.loads(path.read_text())
    if not isinstance(golden, dict):
        raise FunnelrecError(f"{path}: unreadable golden set (not an object)")
    return golden


def read_artifact(artifacts_dir: Path) -> ArtifactContents:
    """Read and verify an artifact directory written by :func:`write_artifact`.

    Raises:
        FunnelrecError: whatever :func:`read_manifest` refuses, or a file that does not decode.
    """
    root = Path(artifacts_dir)
    files = read_manifest(root)
    config = _read(
        root, "config.json", lambda p: ExperimentConfig.model_validate_json(p.read_text())
    )
    channels = {
        name: _read(root, f"channels/{name}.npz", _arrays)
        for name in config.recall.channels
        if f"channels/{name}.npz" in files  # absent: skipped at fit time (missing input)
    }
    ranker = rank_log = None
    if "rank/ranker.npz" in files:
        ranker = _read(root, "rank/ranker.npz", _arrays)
        rank_log = _read(root, "rank/log.parquet", pl.read_parquet)
    golden = _read(root, GOLDEN_FILE, _golden) if GOLDEN_FILE in files else None
    return ArtifactContents(
        config=config,
        user_vocab=_read(root, "vocab/users.parquet", Vocabulary.load),
        item_vocab=_read(root, "vocab/items.parquet", Vocabulary.load),
        history=_read(root, "history.parquet", pl.read_parquet),
        users=_read(root, "users.npz", _arrays),
        # absent from artifacts written before re-ranking existed
        items=_read(root, "items.npz", _arrays) if "items.npz" in files else {},
        channels=channels,
        ranker=ranker,
        rank_log=rank_log,
        golden=golden,
    )

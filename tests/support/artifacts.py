"""Helpers for tests that tamper with saved artifacts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def rehash(root: Path) -> None:
    """Rewrite the manifest to match the files as they are now (what anyone who can write the
    folder can do: the hashes alone prove nothing about who wrote the files)."""
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = {
        rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in manifest["files"]
    }
    path.write_text(json.dumps(manifest, indent=2))

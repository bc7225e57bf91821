"""Artifact authenticity: an HMAC-SHA256 over ``manifest.json`` with a key shared by whoever
trains (``train`` / ``run`` / ``demo`` / ``Recommender.save``) and whoever serves (``serve``,
hot reload, ``recommend``, ``consistency``).

The manifest's sha256 list proves that the files are the ones the manifest names, not who
wrote the manifest: anyone who can write the folder can edit a file and rewrite the manifest
(and, with ``load_recommender`` + ``save_recommender``, the golden set too). A signature over
the manifest bytes, made with a key the writer of the folder does not have, closes that.

The key is read from the environment variable ``FUNNELREC_ARTIFACT_KEY`` (at least
:data:`MIN_KEY_CHARS` characters; e.g. ``python -c "import secrets; print(secrets.token_hex(32))"``)
at every save and load, so the same mechanism covers every command and the library. With the
key set, saving writes ``manifest.sig`` and loading refuses a folder whose signature is
missing or wrong; without it, nothing is signed or checked, and each save and load logs a
warning saying so.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from funnelrec.errors import ConfigError, FunnelrecError

logger = logging.getLogger(__name__)

KEY_ENV = "FUNNELREC_ARTIFACT_KEY"
SIGNATURE_FILE = "manifest.sig"
MIN_KEY_CHARS = 16
_SCHEME = "hmac-sha256:"


class SignatureError(FunnelrecError):
    """An artifact's signature is missing or does not match its manifest."""


def artifact_key() -> bytes | None:
    """The signing key from ``FUNNELREC_ARTIFACT_KEY``, or None when it is unset or empty.

    Raises:
        ConfigError: the key is shorter than :data:`MIN_KEY_CHARS` characters.
    """
    value = os.environ.get(KEY_ENV, "").strip()
    if not value:
        return None
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(
            f"{KEY_ENV} is {len(value)} characters long; use at least {MIN_KEY_CHARS} "
            "(e.g. the output of: python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return value.encode()


def signature(manifest: bytes, key: bytes) -> str:
    """The signature line of ``manifest`` (its exact bytes) under ``key``."""
    return _SCHEME + hmac.new(key, manifest, hashlib.sha256).hexdigest()


def write_signature(root: Path, manifest: bytes) -> bool:
    """Write ``root/manifest.sig`` when a key is configured; False when there is none (the
    caller logs that the artifact is unsigned, under its final name)."""
    key = artifact_key()
    if key is None:
        return False
    (Path(root) / SIGNATURE_FILE).write_text(signature(manifest, key) + "\n")
    return True


def verify_signature(root: Path, manifest: bytes) -> None:
    """Check ``root/manifest.sig`` against ``manifest`` when a key is configured (else log
    that the signature is not checked).

    Raises:
        SignatureError: no signature, or one that does not match (another key, or a manifest
            changed after signing).
    """
    key = artifact_key()
    if key is None:
        logger.warning("%s: signature not checked (%s is not set)", root, KEY_ENV)
        return
    path = Path(root) / SIGNATURE_FILE
    try:
        found = path.read_text().strip()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        raise SignatureError(
            f"{root}: unsigned artifact ({SIGNATURE_FILE} missing) while {KEY_ENV} is set; "
            "refusing it"
        ) from None
    if not hmac.compare_digest(found.encode(), signature(manifest, key).encode()):
        raise SignatureError(
            f"{root}: the signature does not match the manifest (changed after signing, or "
            f"signed with another key); refusing it"
        )


def sign_artifact(root: Path) -> Path:
    """Sign an existing artifact folder with the configured key (for folders written before a
    key was set: verify them first, e.g. ``load_recommender`` without the key).

    Raises:
        ConfigError: no key configured.
    """
    key = artifact_key()
    if key is None:
        raise ConfigError(f"{KEY_ENV} is not set: nothing to sign with")
    path = Path(root) / SIGNATURE_FILE
    path.write_text(signature((Path(root) / "manifest.json").read_bytes(), key) + "\n")
    return path

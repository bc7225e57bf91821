"""The artifact directory format: config + arrays + vocabularies, never pickled objects."""

from funnelrec.artifacts.signing import KEY_ENV, SignatureError, sign_artifact
from funnelrec.artifacts.store import (
    GOLDEN_FILE,
    ArtifactContents,
    artifact_errors,
    read_artifact,
    read_manifest,
    write_artifact,
)

__all__ = [
    "GOLDEN_FILE",
    "KEY_ENV",
    "ArtifactContents",
    "SignatureError",
    "artifact_errors",
    "read_artifact",
    "read_manifest",
    "sign_artifact",
    "write_artifact",
]

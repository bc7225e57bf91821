"""The artifact directory format: config + arrays + vocabularies, never pickled objects."""

from funnelrec.artifacts.store import (
    GOLDEN_FILE,
    ArtifactContents,
    read_artifact,
    read_manifest,
    write_artifact,
)

__all__ = ["GOLDEN_FILE", "ArtifactContents", "read_artifact", "read_manifest", "write_artifact"]

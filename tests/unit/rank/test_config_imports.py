"""Reading or validating a config never imports torch, LightGBM, Faiss or the text models.

Configs are read by the CLI and by serving workers before (or instead of) any model is built,
so every config module keeps its imports light. Checked in a fresh interpreter: the test
process itself has long imported torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

CONFIG_MODULES = (
    "funnelrec.rank.config",
    "funnelrec.recall.two_tower.config",
    "funnelrec.recall.content",
    "funnelrec.recall.itemcf.config",
    "funnelrec.recall.popular",
    "funnelrec.recall.cold_start",
    "funnelrec.recall.merge",
    "funnelrec.rerank.config",
    "funnelrec.train.config",
    "funnelrec.index.config",
    "funnelrec.recall.registry",
    "funnelrec.config",
    "funnelrec",
)
HEAVY = ("torch", "lightgbm", "faiss", "sentence_transformers")

_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_config_modules_import_no_heavy_dependency() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *CONFIG_MODULES],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    heavy = sorted(name for name in loaded if name.split(".")[0] in HEAVY)
    assert not heavy, f"config imports loaded {heavy}"


def test_config_still_validates_every_model_kind() -> None:
    """The union moved to torch-free modules still parses every kind it used to."""
    from funnelrec.rank.config import RankConfig

    kinds = ["deepfm", "dcn_v2", "din", "shared_bottom", "mmoe", "ple", "esmm", "lightgbm"]
    assert [RankConfig(model={"kind": kind}).model.kind for kind in kinds] == kinds

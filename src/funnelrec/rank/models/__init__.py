"""Ranking models: one file each, their configs in :mod:`.config`, and one builder.

Importing this package imports no torch: the configs (and the :data:`RankModelConfig` union)
are loaded eagerly from :mod:`funnelrec.rank.models.config`; the models and
:func:`build_rank_model` are resolved on first attribute access (PEP 562), so that a
:class:`~funnelrec.rank.config.RankConfig` can be read or validated cheaply.

Example:
    >>> from pydantic import TypeAdapter
    >>> from funnelrec.features.spec import FeatureSpec
    >>> from funnelrec.rank.models import build_rank_model
    >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click", "buy"))
    >>> config = TypeAdapter(RankModelConfig).validate_python({"kind": "mmoe", "n_experts": 2})
    >>> type(build_rank_model(config, spec)).__name__
    'MMoE'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from funnelrec._lazy import lazy_getattr
from funnelrec.rank.models.config import (
    DCNv2Config,
    DeepFMConfig,
    DINConfig,
    ESMMConfig,
    ETAConfig,
    MMoEConfig,
    PLEConfig,
    RankModelConfig,
    SDIMConfig,
    SharedBottomConfig,
    SIMHardConfig,
    SIMSoftConfig,
    STARConfig,
    TWINConfig,
)

if TYPE_CHECKING:
    from funnelrec.rank.models.base import FlatInput, GatedRankModel, RankModel
    from funnelrec.rank.models.dcn import DCNv2
    from funnelrec.rank.models.deepfm import DeepFM
    from funnelrec.rank.models.din import DIN
    from funnelrec.rank.models.esmm import ESMM, product_logit
    from funnelrec.rank.models.eta import ETA
    from funnelrec.rank.models.factory import build_rank_model
    from funnelrec.rank.models.long_sequence import LongSequenceModel
    from funnelrec.rank.models.mmoe import MMoE
    from funnelrec.rank.models.ple import PLE
    from funnelrec.rank.models.sdim import SDIM
    from funnelrec.rank.models.shared_bottom import SharedBottom
    from funnelrec.rank.models.sim import SIMHard, SIMSoft
    from funnelrec.rank.models.star import STAR
    from funnelrec.rank.models.twin import TWIN

# Torch-backed names served by __getattr__, with the module that defines each.
_LAZY = {
    "DIN": "funnelrec.rank.models.din",
    "ESMM": "funnelrec.rank.models.esmm",
    "ETA": "funnelrec.rank.models.eta",
    "LongSequenceModel": "funnelrec.rank.models.long_sequence",
    "SDIM": "funnelrec.rank.models.sdim",
    "SIMHard": "funnelrec.rank.models.sim",
    "SIMSoft": "funnelrec.rank.models.sim",
    "TWIN": "funnelrec.rank.models.twin",
    "STAR": "funnelrec.rank.models.star",
    "PLE": "funnelrec.rank.models.ple",
    "DCNv2": "funnelrec.rank.models.dcn",
    "DeepFM": "funnelrec.rank.models.deepfm",
    "FlatInput": "funnelrec.rank.models.base",
    "GatedRankModel": "funnelrec.rank.models.base",
    "MMoE": "funnelrec.rank.models.mmoe",
    "RankModel": "funnelrec.rank.models.base",
    "SharedBottom": "funnelrec.rank.models.shared_bottom",
    "build_rank_model": "funnelrec.rank.models.factory",
    "product_logit": "funnelrec.rank.models.esmm",
}


__getattr__ = lazy_getattr(globals(), _LAZY, __name__)


__all__ = [
    "DIN",
    "ESMM",
    "ETA",
    "PLE",
    "SDIM",
    "STAR",
    "TWIN",
    "DCNv2",
    "DCNv2Config",
    "DINConfig",
    "DeepFM",
    "DeepFMConfig",
    "ESMMConfig",
    "ETAConfig",
    "FlatInput",
    "GatedRankModel",
    "LongSequenceModel",
    "MMoE",
    "MMoEConfig",
    "PLEConfig",
    "RankModel",
    "RankModelConfig",
    "SDIMConfig",
    "SIMHard",
    "SIMHardConfig",
    "SIMSoft",
    "SIMSoftConfig",
    "STARConfig",
    "SharedBottom",
    "SharedBottomConfig",
    "TWINConfig",
    "build_rank_model",
    "product_logit",
]

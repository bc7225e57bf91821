"""Build a ranking model from its config (dispatch on the config type, no string registry).

Example:
    >>> from pydantic import TypeAdapter
    >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click", "buy"))
    >>> config = TypeAdapter(RankModelConfig).validate_python({"kind": "mmoe", "n_experts": 2})
    >>> type(build_rank_model(config, spec)).__name__
    'MMoE'
"""

from __future__ import annotations

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import RankModel
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
from funnelrec.rank.models.dcn import DCNv2
from funnelrec.rank.models.deepfm import DeepFM
from funnelrec.rank.models.din import DIN
from funnelrec.rank.models.esmm import ESMM
from funnelrec.rank.models.eta import ETA
from funnelrec.rank.models.mmoe import MMoE
from funnelrec.rank.models.ple import PLE
from funnelrec.rank.models.sdim import SDIM
from funnelrec.rank.models.shared_bottom import SharedBottom
from funnelrec.rank.models.sim import SIMHard, SIMSoft
from funnelrec.rank.models.star import STAR
from funnelrec.rank.models.twin import TWIN

__all__ = ["build_rank_model"]


def build_rank_model(config: RankModelConfig, spec: FeatureSpec) -> RankModel:
    """The model a config describes, built for ``spec``.

    Args:
        config: any member of :data:`~funnelrec.rank.models.config.RankModelConfig`.
        spec: input shapes and tasks.

    Returns:
        An ``nn.Module`` whose ``forward(batch)`` returns ``{task: logit [B]}``.
    """
    match config:
        case DeepFMConfig():
            return DeepFM(config, spec)
        case DCNv2Config():
            return DCNv2(config, spec)
        case DINConfig():
            return DIN(config, spec)
        case SharedBottomConfig():
            return SharedBottom(config, spec)
        case MMoEConfig():
            return MMoE(config, spec)
        case PLEConfig():
            return PLE(config, spec)
        case ESMMConfig():
            return ESMM(config, spec)
        case SIMHardConfig():
            return SIMHard(config, spec)
        case SIMSoftConfig():
            return SIMSoft(config, spec)
        case ETAConfig():
            return ETA(config, spec)
        case SDIMConfig():
            return SDIM(config, spec)
        case TWINConfig():
            return TWIN(config, spec)
        case STARConfig():
            return STAR(config, spec)
    raise TypeError(f"not a ranking model config: {type(config).__name__}")

"""Ranking models: one file each, a discriminated config union and one builder.

Example:
    >>> from pydantic import TypeAdapter
    >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click", "buy"))
    >>> config = TypeAdapter(RankModelConfig).validate_python({"kind": "mmoe", "n_experts": 2})
    >>> type(build_rank_model(config, spec)).__name__
    'MMoE'
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from funnelrec.rank.models.base import FlatInput, GatedRankModel, RankModel
from funnelrec.rank.models.dcn import DCNv2, DCNv2Config
from funnelrec.rank.models.deepfm import DeepFM, DeepFMConfig
from funnelrec.rank.models.din import DIN, DINConfig
from funnelrec.rank.models.esmm import ESMM, ESMMConfig, product_logit
from funnelrec.rank.models.mmoe import MMoE, MMoEConfig
from funnelrec.rank.models.ple import PLE, PLEConfig
from funnelrec.rank.models.shared_bottom import SharedBottom, SharedBottomConfig
from funnelrec.features.spec import FeatureSpec

RankModelConfig = Annotated[
    DeepFMConfig
    | DCNv2Config
    | DINConfig
    | SharedBottomConfig
    | MMoEConfig
    | PLEConfig
    | ESMMConfig,
    Field(discriminator="kind"),
]


def build_rank_model(config: RankModelConfig, spec: FeatureSpec) -> RankModel:
    """The model a config describes, built for ``spec``.

    Args:
        config: any member of :data:`RankModelConfig`.
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
    raise TypeError(f"not a ranking model config: {type(config).__name__}")


__all__ = [
    "DIN",
    "ESMM",
    "PLE",
    "DCNv2",
    "DCNv2Config",
    "DINConfig",
    "DeepFM",
    "DeepFMConfig",
    "ESMMConfig",
    "FlatInput",
    "GatedRankModel",
    "MMoE",
    "MMoEConfig",
    "PLEConfig",
    "RankModel",
    "RankModelConfig",
    "SharedBottom",
    "SharedBottomConfig",
    "build_rank_model",
    "product_logit",
]

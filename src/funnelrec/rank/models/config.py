"""Configurations of the ranking models and the modules they embed, importable without torch.

Every ranking model is built as ``Model(config, spec)`` from one of these frozen configs
(:func:`funnelrec.rank.models.build_rank_model`); the modules that own the parameters
(:mod:`funnelrec.rank.models`, :mod:`funnelrec.rank.modules`) import their configs from here, so
that reading or validating a :class:`~funnelrec.rank.config.RankConfig` never imports torch.

Example:
    >>> from pydantic import TypeAdapter
    >>> config = TypeAdapter(RankModelConfig).validate_python({"kind": "mmoe", "n_experts": 2})
    >>> type(config).__name__, config.tower.hidden
    ('MMoEConfig', (64,))
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from funnelrec.rank.modules.config import GATE, MLPConfig, tower_config
from funnelrec.train.config import Activation

__all__ = [
    "GATE",
    "Activation",
    "DCNv2Config",
    "DINConfig",
    "DeepFMConfig",
    "ESMMConfig",
    "ETAConfig",
    "FlatInputConfig",
    "LongSequenceConfig",
    "MLPConfig",
    "MMoEConfig",
    "PLEConfig",
    "RankModelConfig",
    "RankModelConfigBase",
    "SDIMConfig",
    "SIMHardConfig",
    "SIMSoftConfig",
    "STARConfig",
    "SearchConfig",
    "SharedBottomConfig",
    "TWINConfig",
    "tower_config",
]


def _esmm_tower() -> MLPConfig:
    """Default ESMM tower (CTR and every conditional one): hidden layers of 128 and 64."""
    return MLPConfig(hidden=(128, 64))


class RankModelConfigBase(BaseModel):
    """Fields every ranking model config has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    embed_dim: int = Field(16, gt=0, description="Width E of every field embedding.")
    embed_init_std: float = Field(0.05, gt=0, description="Normal init std of embeddings.")
    seed: int | None = Field(
        0,
        description="Seed of the parameter initialisation (None = the caller's torch RNG). "
        "Initialisation runs inside torch.random.fork_rng, so the global RNG state is restored.",
    )


class FlatInputConfig(RankModelConfigBase):
    """Fields of models whose input is the flat ``[fields, (pooled sequence), dense]`` vector."""

    sequence_pooling: Literal["none", "mean"] = Field(
        "none",
        description="'mean': append the mean of the behaviour sequence's item and category "
        "embeddings (shared with the item/category fields) to the flat input.",
    )


class DeepFMConfig(FlatInputConfig):
    """DeepFM settings.

    Example:
        >>> DeepFMConfig(deep=MLPConfig(hidden=(64, 32))).kind
        'deepfm'
    """

    kind: Literal["deepfm"] = "deepfm"
    deep: MLPConfig = Field(default_factory=MLPConfig, description="The deep tower.")


class DCNv2Config(FlatInputConfig):
    """DCN-v2 settings.

    Example:
        >>> DCNv2Config(cross_layers=2, low_rank=16).structure
        'parallel'
    """

    kind: Literal["dcn_v2"] = "dcn_v2"
    cross_layers: int = Field(3, ge=1, description="Number of cross layers.")
    low_rank: int | None = Field(None, gt=0, description="Rank r of W = U V (None = full).")
    structure: Literal["parallel", "stacked"] = "parallel"
    deep: MLPConfig = Field(default_factory=MLPConfig, description="The deep tower.")


class DINConfig(RankModelConfigBase):
    """DIN settings.

    Example:
        >>> DINConfig().attention.hidden
        (64, 32)
    """

    kind: Literal["din"] = "din"
    attention: MLPConfig = Field(
        default_factory=lambda: MLPConfig(hidden=(64, 32)),
        description="Hidden layers of the activation unit.",
    )
    normalise: Literal["none", "softmax"] = Field(
        "none", description="Attention weights raw (DIN) or softmax over real positions."
    )
    deep: MLPConfig = Field(default_factory=MLPConfig, description="The MLP after pooling.")


class SharedBottomConfig(FlatInputConfig):
    """Shared-Bottom settings.

    Example:
        >>> SharedBottomConfig().tower.hidden
        (64,)
    """

    kind: Literal["shared_bottom"] = "shared_bottom"
    bottom: MLPConfig = Field(default_factory=MLPConfig, description="The shared MLP.")
    tower: MLPConfig = Field(default_factory=tower_config, description="Per-task tower.")


class MMoEConfig(FlatInputConfig):
    """MMoE settings.

    Example:
        >>> MMoEConfig(n_experts=8).expert.hidden
        (256, 128)
    """

    kind: Literal["mmoe"] = "mmoe"
    n_experts: int = Field(4, ge=1, description="Number of shared experts N.")
    expert: MLPConfig = Field(default_factory=MLPConfig, description="Every expert's MLP.")
    tower: MLPConfig = Field(default_factory=tower_config, description="Per-task tower.")


class PLEConfig(FlatInputConfig):
    """PLE settings (``levels=1`` is a single CGC layer).

    Example:
        >>> PLEConfig(levels=2, n_specific=1, n_shared=2).kind
        'ple'
    """

    kind: Literal["ple"] = "ple"
    levels: int = Field(2, ge=1, description="Number of stacked CGC layers.")
    n_specific: int = Field(2, ge=0, description="Experts of each task, per level.")
    n_shared: int = Field(2, ge=0, description="Shared experts per level.")
    expert: MLPConfig = Field(default_factory=MLPConfig, description="Every expert's MLP.")
    tower: MLPConfig = Field(default_factory=tower_config, description="Per-task tower.")

    @model_validator(mode="after")
    def _some_experts(self) -> PLEConfig:
        if self.n_specific + self.n_shared < 1:
            raise ValueError("PLE needs n_specific + n_shared >= 1")
        return self


class ESMMConfig(FlatInputConfig):
    """ESMM settings.

    Example:
        >>> ESMMConfig().tower.hidden
        (128, 64)
    """

    kind: Literal["esmm"] = "esmm"
    tower: MLPConfig = Field(
        default_factory=_esmm_tower, description="The CTR and every conditional tower."
    )


class LongSequenceConfig(RankModelConfigBase):
    """Fields of the long-sequence models (:mod:`funnelrec.rank.models.long_sequence`): a
    long-term interest over the whole ``[B, L]`` sequence, optionally a DIN short-term interest
    over its most recent ``short_len`` behaviours, both joined to the field embeddings and the
    dense features in the ``deep`` MLP."""

    short_len: int = Field(
        50,
        ge=0,
        description="DIN short-term interest over the most recent short_len behaviours "
        "(0 = long-term interest only).",
    )
    short_attention: MLPConfig = Field(
        default_factory=lambda: MLPConfig(hidden=(64, 32)),
        description="Hidden layers of the short-term DIN activation unit.",
    )
    deep: MLPConfig = Field(default_factory=MLPConfig, description="The MLP after pooling.")
    search_chunk: int = Field(
        2048,
        ge=1,
        description="Behaviours scored per slice in the gradient-free search stage "
        "(bounds its memory to [B, search_chunk, ...]; no effect on the result).",
    )


class SearchConfig(LongSequenceConfig):
    """Fields of the search-then-attend models (SIM, ETA, TWIN): the search stage keeps ``k``
    behaviours, the Exact Search Unit attends over them with ``n_heads`` heads and a learned
    embedding of the time gap in ``n_gap_buckets`` log-spaced buckets."""

    k: int = Field(50, ge=1, description="Behaviours kept by the search stage.")
    n_heads: int = Field(2, ge=1, description="Attention heads (must divide 2 * embed_dim).")
    n_gap_buckets: int = Field(
        32, ge=1, description="Log-spaced time-gap buckets over log1p(seconds) in [0, 20]."
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> SearchConfig:
        if (2 * self.embed_dim) % self.n_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must divide 2 * embed_dim = {2 * self.embed_dim}"
            )
        return self


class SIMHardConfig(SearchConfig):
    """SIM with hard search: keep the k most recent behaviours of the candidate's category.

    Example:
        >>> SIMHardConfig(k=20).kind
        'sim_hard'
    """

    kind: Literal["sim_hard"] = "sim_hard"


class SIMSoftConfig(SearchConfig):
    """SIM with soft search: keep the k behaviours of highest inner product with the candidate.

    Example:
        >>> SIMSoftConfig().k
        50
    """

    kind: Literal["sim_soft"] = "sim_soft"


class ETAConfig(SearchConfig):
    """ETA: keep the k behaviours of smallest SimHash Hamming distance to the candidate.

    Example:
        >>> ETAConfig(n_bits=32).n_bits
        32
    """

    kind: Literal["eta"] = "eta"
    n_bits: int = Field(64, ge=1, description="SimHash signature length m.")


class TWINConfig(SearchConfig):
    """TWIN: search and attention share one relevance metric (the ESU's attention logits).

    Example:
        >>> TWINConfig(n_heads=4).n_heads
        4
    """

    kind: Literal["twin"] = "twin"


class SDIMConfig(LongSequenceConfig):
    """SDIM: no search; behaviours in the candidate's SimHash bucket are averaged per round.

    Example:
        >>> SDIMConfig().n_hashes, SDIMConfig().hash_bits
        (16, 3)
    """

    kind: Literal["sdim"] = "sdim"
    n_hashes: int = Field(16, ge=1, description="Hashing rounds m (averaged).")
    hash_bits: int = Field(
        3,
        ge=1,
        le=16,
        description="Bits tau per round: a behaviour is sampled when all "
        "tau bits agree with the candidate's.",
    )


class STARConfig(FlatInputConfig):
    """STAR settings (star-topology FCN, partitioned normalisation, auxiliary network).

    The scenario is the sparse field ``scenario`` (the ranker adds it for this kind,
    ``funnelrec.features.scenario``); without one every sample is scenario 0 and STAR is a
    shared-bottom network with one scenario.

    Example:
        >>> STARConfig().star.hidden, STARConfig().auxiliary.hidden
        ((256, 128), (32,))
    """

    kind: Literal["star"] = "star"
    star: MLPConfig = Field(
        default_factory=MLPConfig,
        description="The star-topology FCN shared by all tasks (batch_norm must stay false: "
        "partitioned_norm normalises per scenario).",
    )
    tower: MLPConfig = Field(default_factory=tower_config, description="Per-task tower.")
    partitioned_norm: bool = Field(
        True, description="Normalise the FCN's input with per-scenario batch statistics."
    )
    auxiliary: MLPConfig | None = Field(
        default_factory=lambda: MLPConfig(hidden=(32,)),
        description="The auxiliary network on the scenario embedding, whose per-task logit "
        "is added to the main one (None = no auxiliary network).",
    )

    @model_validator(mode="after")
    def _no_batch_norm(self) -> STARConfig:
        if self.star.batch_norm:
            raise ValueError(
                "star.batch_norm must be false: STAR normalises per scenario (partitioned_norm)"
            )
        return self


RankModelConfig = Annotated[
    DeepFMConfig
    | DCNv2Config
    | DINConfig
    | SharedBottomConfig
    | MMoEConfig
    | PLEConfig
    | ESMMConfig
    | SIMHardConfig
    | SIMSoftConfig
    | ETAConfig
    | SDIMConfig
    | TWINConfig
    | STARConfig,
    Field(discriminator="kind"),
]
"""Any neural ranking model config, told apart by ``kind``."""

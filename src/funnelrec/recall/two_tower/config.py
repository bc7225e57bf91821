"""The typed, frozen configuration of the two-tower retrieval channel.

Importable without torch or Faiss (experiment configs embed it); the model, the training and
the index live in the sibling modules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from funnelrec.features.text import TextEncoderConfig
from funnelrec.index.config import AutoIndexConfig, ExactIndexConfig, IndexConfig
from funnelrec.recall.base import RetrieverBase, RetrieverConfig
from funnelrec.train.config import TrainLoopConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TowerConfig(_Frozen):
    """Architecture of both towers (see :mod:`funnelrec.recall.two_tower.model`).

    Example:
        >>> TowerConfig(pooling="attention").heads
        2
    """

    kind: Literal["towers"] = "towers"
    dim: int = Field(64, gt=0, description="Output embedding size D of both towers.")
    embed_dim: int = Field(64, gt=0, description="Size E of every input embedding.")
    hidden: tuple[int, ...] = Field((128,), description="Hidden widths of each tower's MLP.")
    history_len: int = Field(50, gt=0, description="Most recent history items L fed to the user.")
    pooling: Literal["mean", "attention"] = Field(
        "mean",
        description="'mean' of the history embeddings, or 'attention': a learned query attends "
        "over the history (multi-head, recency position embeddings, key padding mask).",
    )
    heads: int = Field(2, gt=0, description="Attention heads (pooling='attention').")
    time_buckets: int = Field(
        16, gt=0, description="Quantile buckets of item creation time (plus an unknown bucket)."
    )
    temperature: float = Field(
        0.1, gt=0, description="Logits are cos(u, v) / temperature during training."
    )
    sparse_embeddings: bool = Field(
        True,
        description="Embedding tables with sparse gradients, stepped by CatchUpAdam "
        "(train/catchup_adam.py): a step touches only the batch's rows instead of the whole "
        "catalogue, and a row's missed momentum steps are applied when it is next read, so "
        "training follows dense Adam (docs/distributed.md has the measured fit time and "
        "recall). A distributed fit on NCCL (no sparse all-reduce) trains dense tables.",
    )

    @model_validator(mode="after")
    def _check_heads(self) -> TowerConfig:
        if self.pooling == "attention" and self.embed_dim % self.heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by heads {self.heads}")
        return self


class HardNegativeConfig(_Frozen):
    """Hard negatives (EBR, Huang et al. 2020): per example ``n`` extra negatives that score high.

    ``mined``: items the current model ranks inside ``rank_window`` for the user (the user's
    own positives removed first), re-mined every ``mine_every`` epochs by searching
    ``mining_index`` built over the current item vectors (the model's own index; exact by
    default, since mining reads ranks up to ``hi``). ``category``: random items of the
    positive's category. ``n`` per example is ``round(n_easy / easy_hard_ratio)`` (at least
    1), ``n_easy`` = ``batch_size - 1 + n_uniform_negatives``, split evenly over ``sources``.
    No hard negatives before ``warmup_epochs``; with ``curriculum_start`` the first window
    starts at that rank and moves linearly to ``rank_window`` over ``curriculum_rounds``
    mining rounds (easier to harder).

    Example:
        >>> HardNegativeConfig().rank_window
        (101, 500)
    """

    kind: Literal["hard"] = "hard"
    sources: tuple[Literal["mined", "category"], ...] = Field(("mined",), min_length=1)
    easy_hard_ratio: float = Field(100.0, gt=0, description="Easy negatives per hard negative.")
    rank_window: tuple[int, int] = Field(
        (101, 500), description="1-based ranks (inclusive) mined negatives are drawn from."
    )
    mine_every: int = Field(1, gt=0, description="Re-mine every this many epochs.")
    warmup_epochs: int = Field(1, ge=0, description="Epochs trained before hard negatives.")
    curriculum_start: int | None = Field(
        None, gt=0, description="First rank of the first (easiest) window (None = no curriculum)."
    )
    curriculum_rounds: int = Field(2, gt=0, description="Mining rounds to reach rank_window.")
    mining_index: IndexConfig = Field(
        default_factory=ExactIndexConfig,
        description="Index built over the current item vectors to mine from (the model's own).",
    )

    @model_validator(mode="after")
    def _check_window(self) -> HardNegativeConfig:
        lo, hi = self.rank_window
        if not 1 <= lo <= hi:
            raise ValueError(f"rank_window must satisfy 1 <= lo <= hi, got {self.rank_window}")
        if self.curriculum_start is not None and self.curriculum_start < lo:
            raise ValueError("curriculum_start must not be harder (smaller) than rank_window[0]")
        return self


class TwoTowerConfig(RetrieverConfig):
    """Two-tower (dual encoder) retrieval with sampled-softmax training and an ANN index.

    Training: for each positive, the user tower sees the user's attributes and the last
    ``towers.history_len`` positives strictly before it; the item tower sees the item id,
    category, creation-time bucket and text embedding. Loss: softmax over in-batch negatives
    (logQ-corrected, accidental hits masked), optionally ``n_uniform_negatives`` uniformly
    sampled items (mixed negative sampling) and hard negatives. Serving: item vectors in
    ``index`` searched with the inner product of L2-normalised vectors (= the training cosine).

    Example:
        >>> TwoTowerConfig(n_uniform_negatives=256).kind
        'two_tower'
    """

    kind: Literal["two_tower"] = "two_tower"
    seed: int = Field(0, ge=0, description="Seeds parameter init, shuffling and sampling.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = cuda if any.")

    towers: TowerConfig = TowerConfig()
    text: TextEncoderConfig | None = Field(
        TextEncoderConfig(),
        description="Item text -> content embedding (None = no content feature). The default "
        "'auto' embeds natural-language titles with MiniLM (better on real titles such as "
        "MovieLens', about a minute per fit on CPU) and made-up or code-like texts with the "
        "fitted hashing encoder (seconds on 2 cores).",
    )
    index: IndexConfig = Field(
        default_factory=AutoIndexConfig,
        description="Index of the item vectors. 'auto': exact search up to 50k items (cheaper per "
        "served query than HNSW at ef_search 512, and exact), Faiss IVF above with its nprobe "
        "calibrated after the fit to recall@k 0.99 against exact search on the training users "
        "(a fixed nprobe gave 0.99 on the simulator and 0.93 on Taobao; AutoIndexConfig says "
        "why IVF).",
    )

    # ---- examples ----
    positives: Literal["clicks", "exposures"] = Field(
        "clicks",
        description="'clicks': Dataset.positives are the training targets; 'exposures': every "
        "interaction (impressions included). Non-clicked exposures are never used as negatives.",
    )
    dedupe_targets: bool = Field(
        True,
        description="Train on the first positive of each (user, item) only: retrieval never "
        "returns seen items, so repeats teach nothing it can use.",
    )
    id_dropout: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Share of training items whose id embedding is replaced by the unknown-id row, "
        "so category/time/content alone place new items.",
    )

    # ---- objective ----
    logq_correction: bool = Field(
        True, description="Subtract log(expected count of the item among sampled candidates)."
    )
    n_uniform_negatives: int = Field(
        1024,
        ge=0,
        description="Uniformly sampled corpus negatives shared by the batch (mixed negative "
        "sampling; 0 = in-batch only). In-batch negatives are the popular items, so logQ "
        "alone under-samples the tail: mixed negatives won benchmarks/two_tower.py on "
        "MovieLens-100k (Recall@50 0.286 vs 0.252) and the simulator (0.170 vs 0.165), at "
        "about 25% of the training throughput.",
    )
    hard_negatives: HardNegativeConfig | None = None

    # ---- optimisation ----
    batch_size: int = Field(1024, gt=1)
    train: TrainLoopConfig = Field(
        TrainLoopConfig(epochs=3, lr=2e-3, clip_grad_norm=5.0),
        description="Loop settings; more epochs overfit the id embeddings on sparse logs.",
    )
    warm_start_epochs: int = Field(
        1,
        ge=0,
        description="Epochs of a fit that starts from an earlier fit of this channel on a subset "
        "of the same data (fit_funnel's fit before the ranking window; leakage-free, the earlier "
        "model saw only rows this one trains on): the rows of ids both fits know and every "
        "other weight are copied from it (recall/two_tower/warm_start.py), then it trains this "
        "many epochs instead of train.epochs. 0 = always train from scratch.",
    )
    inference_batch_size: int = Field(8192, gt=0, description="Rows per tower forward pass.")

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        from funnelrec.recall.two_tower.retriever import TwoTower  # torch: imported on use

        return TwoTower

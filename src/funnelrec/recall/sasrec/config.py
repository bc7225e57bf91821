"""The typed, frozen configuration of the SASRec sequential recall channel.

Importable without torch or Faiss (experiment configs embed it); the model, the training
examples, the loss and the index live in the sibling modules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from funnelrec.index.config import AutoIndexConfig, IndexConfig
from funnelrec.recall.base import RetrieverBase, RetrieverConfig
from funnelrec.train.config import TrainLoopConfig


class SASRecConfig(RetrieverConfig):
    """SASRec (Kang & McAuley 2018): a causal transformer over the user's recent items.

    Training: each user's distinct positives in time order (an item at its latest
    occurrence, the rule serving reads histories with) are cut into windows of at most
    ``max_len`` (input, next item) pairs; at every position the model predicts the next item
    with a sampled softmax over the batch's target items plus ``n_uniform_negatives`` uniform
    corpus items, logQ-corrected as the two-tower's. Serving: the transformer output at the
    last history position is the user vector; items are scored by inner product with the
    same item embedding table, searched in ``index``.

    Example:
        >>> SASRecConfig(blocks=1, heads=2).kind
        'sasrec'
    """

    kind: Literal["sasrec"] = "sasrec"
    seed: int = Field(0, ge=0, description="Seeds parameter init, shuffling, sampling, dropout.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = cuda if any.")

    # ---- architecture ----
    dim: int = Field(64, gt=0, description="Width D of item / position embeddings and blocks.")
    blocks: int = Field(2, gt=0, description="Pre-LN transformer blocks.")
    heads: int = Field(1, gt=0, description="Attention heads per block (must divide dim).")
    ffn_dim: int = Field(
        256, gt=0, description="Hidden width of each block's feed-forward layer (RecBole: 256)."
    )
    dropout: float = Field(
        0.2, ge=0, lt=1, description="Dropout of embeddings, attention and feed-forward."
    )
    max_len: int = Field(
        50,
        gt=0,
        description="Most recent history items the model reads (and positions it learns).",
    )
    index: IndexConfig = Field(
        default_factory=AutoIndexConfig,
        description="Index of the item embeddings (inner product). 'auto': exact search up to "
        "50k items, Faiss IVF above with its nprobe calibrated after the fit to recall@k 0.99 "
        "against exact search on the training users.",
    )

    # ---- objective ----
    logq_correction: bool = Field(
        True, description="Subtract log(expected count of the item among sampled candidates)."
    )
    n_uniform_negatives: int = Field(
        256,
        ge=0,
        description="Uniformly sampled corpus negatives shared by the batch (0 = in-batch "
        "targets only); in-batch targets over-sample popular items, uniform ones reach the "
        "tail. A batch's distinct targets already cover much of a small catalogue (about 1.5k "
        "of MovieLens-100k's 1.7k items), so fewer than the two-tower's 1024.",
    )

    # ---- optimisation ----
    batch_size: int = Field(
        128, gt=0, description="Windows (sequences) per training batch (x up to max_len targets)."
    )
    train: TrainLoopConfig = Field(
        TrainLoopConfig(epochs=50, lr=5e-3, clip_grad_norm=5.0),
        description="Loop settings; epochs is the maximum (early stopping ends most runs: "
        "MovieLens-100k stopped at epoch 25, best 20). lr 1e-3 with batch 256 (10 steps an "
        "epoch there) was still far from converged when a noisy validation stopped it.",
    )
    valid_users: int = Field(
        1000,
        ge=0,
        description="Users (drawn among those with 3+ items) whose last item is held out of "
        "training, to stop early on their NDCG@10 and keep the best epoch (RecBole's "
        "leave-one-out validation; 0 = no hold-out, train every epoch). A count, not a share: "
        "the metric's noise depends on it (~100 users stopped MovieLens-100k runs at random).",
    )
    patience: int = Field(5, gt=0, description="Epochs without a better validation NDCG@10.")
    inference_batch_size: int = Field(4096, gt=0, description="Histories per forward pass.")
    fit_threads: int | None = Field(
        None,
        ge=1,
        description="Torch CPU threads while training (None = torch's setting, all cores by "
        "default). 1 is much faster on a machine busy with other work (measured 3.5x per "
        "MovieLens-100k step on a loaded 2-core box); no effect on GPU kernels.",
    )

    @model_validator(mode="after")
    def _check_heads(self) -> SASRecConfig:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        return self

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        from funnelrec.recall.sasrec.retriever import SASRec  # torch: imported on use

        return SASRec

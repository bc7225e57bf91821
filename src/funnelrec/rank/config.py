"""The ranking stage's configuration, in parts: which samples, how to train, how to fuse the
task scores, how to serve. Importing this module imports no torch, LightGBM or Faiss, so that
reading or validating a config (the CLI, a serving worker) stays cheap.

Example:
    >>> cfg = RankConfig(model={"kind": "deepfm"})
    >>> cfg.model.kind, cfg.train.batch_size, cfg.serve.score_k
    ('deepfm', 2048, 200)
    >>> RankConfig(model={"kind": "lightgbm", "objective": "lambdarank"}).outputs_probabilities
    False
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from funnelrec.features.pit import PointInTimeConfig
from funnelrec.features.semantic_ids.fields import SemanticFieldsConfig
from funnelrec.rank.fusion import FusionConfig
from funnelrec.rank.gbdt_config import LightGBMConfig
from funnelrec.rank.models.config import MMoEConfig, RankModelConfig
from funnelrec.train.config import TrainLoopConfig

AnyRankModelConfig = Annotated[
    RankModelConfig | LightGBMConfig,
    Field(discriminator="kind"),
]

DEFAULT_VALUE_WEIGHTS = {"click": 1.0, "like": 2.0, "fav": 2.0, "cart": 3.0, "order": 10.0}
"""Business value of each task's positive, for the fusion target (unknown tasks weigh 1)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RankSamplesConfig(_Frozen):
    """Which exposures become training samples, and how many."""

    source: Literal["auto", "impressions", "recall"] = Field(
        "recall",
        description="Training exposures: logged impression slates (non-clicked = negatives), "
        "recall candidates (not interacted = negatives), or auto = impressions when the log "
        "has them. The funnel's ranker re-orders recall candidates, so it trains on them by "
        "default: on the simulator an impression-trained ranker scored NDCG@10 0.064 on the "
        "test users' candidates against 0.141 for the recall order (see docs/ranking.md).",
    )
    tasks: tuple[str, ...] | None = Field(
        None, description="Tasks to rank for (None = every known task the log supports)."
    )
    window_fraction: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="The last share of the training time span whose exposures become ranking "
        "samples (recall source: recall is re-fitted on the time before it).",
    )
    valid_fraction: float = Field(
        0.2, gt=0, lt=1, description="Latest share of sample queries for early stopping/fusion."
    )
    guard_fraction: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Latest share of sample queries held out from training, early stopping and "
        "fusion tuning: the slice the do-no-harm guards judge every learned stage on.",
    )
    max_train_samples: int | None = Field(
        200_000,
        gt=0,
        description="Whole queries at random until about this many samples, for the training "
        "(with validation) and the guard parts each (None = all). With recall-source samples "
        "only the queries the cap needs are recalled.",
    )
    max_negatives_per_query: int | None = Field(
        None, gt=0, description="Subsample negatives per query (all positives kept)."
    )
    popularity_beta: float = Field(
        0.0,
        ge=0,
        le=2,
        description="Down-weight training samples by their item's popularity, (1 + "
        "positives)^-beta, mean 1 (rank/popularity_weights.py; neural rankers; 0 = off).",
    )
    label_window_s: float | None = Field(
        None,
        gt=0,
        description="Label window (s): an exposure's label counts only events within this "
        "long after it, as a training job would have seen them (delayed conversions past it "
        "are censored: docs/delayed_conversion.md); None = each task's own window.",
    )
    min_task_positives: int = Field(
        50,
        ge=1,
        description="A task with fewer positives among the training samples is not modelled "
        "(dropped with a warning, listed in the rank report's dropped_tasks): a head fitted "
        "on a handful of positives is noise that fusion would add to every score (Taobao's "
        "sample has 2 fav and 3 order positives in its window).",
    )


class RankTrainConfig(_Frozen):
    """How the model is fitted (neural models: the one training loop; LightGBM: its own)."""

    loop: TrainLoopConfig = TrainLoopConfig(epochs=3, lr=1e-3, clip_grad_norm=5.0)
    uncertainty_weighting: bool = Field(False, description="Learn per-task loss weights.")
    patience: int = Field(1, ge=1, description="Early stopping on the validation loss.")
    batch_size: int = Field(2048, gt=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(0, ge=0)
    health: bool = Field(True, description="Record training-health diagnostics (neural).")
    loss: Literal["pointwise", "listwise"] = Field(
        "pointwise",
        description="Neural models' loss. pointwise: BCE per sample and task; p_<task> are "
        "probabilities (corrected for negative down-sampling). listwise: per task, softmax "
        "cross-entropy over each query's samples (ListNet), trained on batches of whole "
        "queries (batch_size rows, about); optimises the order within a query, suits "
        "re-ordering candidate lists judged by NDCG; queries without a positive for a task "
        "contribute nothing to it; p_<task> = sigmoid(logit) are ranking scores, not "
        "probabilities (no down-sampling correction). Not for ESMM, whose CTCVR = CTR x CVR "
        "is a product of probabilities, nor LightGBM (use model.objective='lambdarank').",
    )
    calibration: Literal["none", "isotonic"] = Field(
        "none",
        description="isotonic: after training, a monotone map per task fitted on the "
        "validation samples turns the (down-sampling corrected) probabilities into observed "
        "rates (rank/calibration.py::IsotonicCalibrator), applied before fusion and saved "
        "with the ranker. Off by default: its steps tie candidates the model had ordered. "
        "Only for objectives whose outputs are probabilities.",
    )


class FusionSearchConfig(_Frozen):
    """How the per-task probabilities become one score: a fixed formula, or one searched on
    the validation samples."""

    formula: FusionConfig | None = Field(
        None, description="Fixed fusion formula; None = tune on the validation samples."
    )
    metric: Literal["ndcg", "gauc"] = "ndcg"
    k: int = Field(10, gt=0)
    value_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_VALUE_WEIGHTS),
        description="Value of each task's positive for the fusion target.",
    )
    trials: int = Field(40, gt=0)


class RankServeConfig(_Frozen):
    """What a request costs: how many merged candidates are scored, in what batches."""

    score_k: int = Field(200, gt=0, description="Merged candidates scored per request.")
    inference_batch_size: int = Field(16384, gt=0)
    behaviour_cache_mb: int = Field(
        64,
        ge=0,
        description="Long-sequence rankers with a behaviour-side cache (TWIN, ETA): memory for "
        "the per-user behaviour projections kept between requests (rank/behaviour_cache.py); "
        "0 keeps none.",
    )
    runtime: Literal["auto", "torch"] = Field(
        "auto",
        description="How a loaded ranker runs its network: 'auto' saves an ONNX export with the "
        "artifact and runs it with ONNX Runtime on one thread (x0.67 of eager PyTorch's CPU at "
        "100 candidates, benchmarks/ranker_inference.py) when the network reads only sparse "
        "and dense inputs and the export reproduces it; 'torch' always runs eager PyTorch.",
    )


class PreRankConfig(_Frozen):
    """The pre-ranker (coarse ranking, docs/ranking.md): a linear model or a tiny MLP over the
    recall evidence and item popularity, distilled from the fitted ranker, that cuts the
    candidates the ranker would score to the ``keep`` it scores; the others follow the ranked
    ones in the pre-ranker's order."""

    enabled: bool = Field(
        True,
        description="Fit a pre-ranker after the ranker and let it choose the candidates the "
        "ranker scores (judged by the prerank guard, guards.prerank_max_loss: a pre-ranker "
        "that costs more NDCG on the guard slice is dropped).",
    )
    keep: int = Field(
        100,
        gt=0,
        description="Candidates per query the ranker scores, of the first rank.serve.score_k "
        "merged ones it would score without a pre-ranker (warm users' known items only).",
    )
    model: Literal["linear", "mlp"] = Field(
        "linear",
        description="linear: one weight per feature (a dot product per candidate); mlp: one "
        "hidden ReLU layer of `hidden` units.",
    )
    hidden: int = Field(16, gt=0, description="mlp: hidden units.")
    teacher_top: int = Field(
        20,
        gt=0,
        description="Distillation target: the ranker's top this many per query, weighted "
        "1 / log2(1 + position), as a listwise softmax target (rank/listwise.py). Only the "
        "head of the ranker's order matters: it is what the cut must not lose.",
    )
    steps: int = Field(300, gt=0, description="Full-batch Adam steps.")
    lr: float = Field(0.05, gt=0, description="Adam learning rate.")
    l2: float = Field(1e-4, ge=0, description="Weight decay.")
    eval_every: int = Field(
        25, gt=0, description="Steps between validation checks; the best check's weights stay."
    )


class RankConfig(_Frozen):
    """The ranking stage: samples, features, model, training, fusion and serving."""

    enabled: bool = Field(True, description="Run the ranking stage after the merge.")
    model: AnyRankModelConfig = Field(default_factory=MMoEConfig)
    features: PointInTimeConfig = PointInTimeConfig()
    samples: RankSamplesConfig = RankSamplesConfig()
    train: RankTrainConfig = RankTrainConfig()
    fusion: FusionSearchConfig = FusionSearchConfig()
    serve: RankServeConfig = RankServeConfig()
    prerank: PreRankConfig = PreRankConfig()
    scenario_feature: bool = Field(
        False,
        description="Add the samples' scenario (column 'scenario': KuaiRand's tab, the "
        "simulator's scenarios) as a sparse field (funnelrec/features/scenario.py); always on "
        "for model.kind='star'. Samples without the column get the unknown code 0.",
    )

    semantic_ids: SemanticFieldsConfig | None = Field(
        None,
        description="Add the items' semantic-id prefixes (RQ-KMeans codes of their text, "
        "features/semantic_ids/fields.py) as sparse fields: a new item gets real values from "
        "its text. None = off.",
    )

    @model_validator(mode="after")
    def _check_objective(self) -> RankConfig:
        check_objective(self.model, self.train)
        return self

    @property
    def uses_scenario(self) -> bool:
        """Whether the ranker adds the scenario field (asked for, or a STAR model)."""
        return self.scenario_feature or self.model.kind == "star"

    @property
    def outputs_probabilities(self) -> bool:
        """Whether ``p_<task>`` are probabilities (pointwise BCE, LightGBM binary) rather than
        ranking scores in ``[0, 1]`` (listwise loss, lambdarank), which no down-sampling
        correction or calibration metric applies to."""
        if isinstance(self.model, LightGBMConfig):
            return self.model.outputs_probabilities
        return self.train.loss == "pointwise"


def check_objective(model: RankModelConfig | LightGBMConfig, train: RankTrainConfig) -> None:
    """Refuse a listwise loss where it has no meaning (also called at fit time, since
    ``model_copy(update=...)`` skips validation).

    Raises:
        ValueError: ``train.loss="listwise"`` with ESMM (its CTCVR = CTR x CVR is a product of
            probabilities, which a per-query softmax leaves unidentified) or with LightGBM
            (its ranking objective is ``model.objective="lambdarank"``).
    """
    if train.loss != "listwise":
        return
    if model.kind == "esmm":
        raise ValueError(
            "rank.train.loss='listwise' does not apply to ESMM: its pCTCVR = pCTR x pCVR "
            "needs probabilities, and a per-query softmax fixes only their order; use "
            "loss='pointwise' with ESMM or another model with 'listwise'"
        )
    if model.kind == "lightgbm":
        raise ValueError(
            "rank.train.loss='listwise' is for the neural models; for LightGBM set "
            "rank.model.objective='lambdarank'"
        )

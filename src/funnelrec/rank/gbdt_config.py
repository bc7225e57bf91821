"""The LightGBM ranker's configuration, importable without LightGBM (or torch).

:class:`~funnelrec.rank.config.RankConfig` embeds it in its model union, and reading or
validating a config must stay cheap; :mod:`funnelrec.rank.gbdt` owns the boosters.

Example:
    >>> LightGBMConfig(num_leaves=15).high_cardinality
    'drop'
    >>> LightGBMConfig(objective="lambdarank").outputs_probabilities
    False
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LightGBMConfig", "Objective"]

Objective = Literal["binary", "lambdarank"]
"""What a booster optimises: log-loss per sample, or LambdaMART per query."""


class LightGBMConfig(BaseModel):
    """Hyper-parameters of the per-task LightGBM boosters (shared by every task).

    ``early_stopping_rounds = 0`` trains all ``n_estimators`` rounds; early stopping also needs
    a validation set. ``num_threads = 0`` lets LightGBM choose (OpenMP default).
    ``deterministic`` asks LightGBM for run-to-run identical models at a small speed cost.

    ``objective="lambdarank"`` trains LambdaMART per task on the samples' queries (see
    :mod:`funnelrec.rank.gbdt_objective`): its outputs are ranking scores mapped into
    ``(0, 1)`` by a sigmoid, monotone in the score but not calibrated probabilities.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["lightgbm"] = "lightgbm"
    objective: Objective = Field(
        "binary",
        description="binary: log-loss per sample, outputs calibrated probabilities (before "
        "negative down-sampling correction). lambdarank: LambdaMART over each query's samples, "
        "early-stopped on validation NDCG@ndcg_eval_at; optimises the list order directly, "
        "outputs sigmoid(ranking score), which is not a probability (no down-sampling "
        "correction, calibration metrics are meaningless). Queries whose samples all share "
        "one label (no positive) carry no pair to order and are left out of its training.",
    )
    lambdarank_truncation_level: int = Field(
        30,
        ge=1,
        description="lambdarank: pairs are formed only with the top this-many samples of "
        "each query by current score (LightGBM's default 30); set it above the list cut-off "
        "the funnel is judged at.",
    )
    lambdarank_norm: bool = Field(
        True,
        description="lambdarank: normalise each query's gradients (LightGBM's default), so "
        "long or many-positive queries do not dominate.",
    )
    ndcg_eval_at: int = Field(
        10, ge=1, description="lambdarank: the NDCG cut-off of validation early stopping."
    )
    num_leaves: int = Field(31, ge=2)
    learning_rate: float = Field(0.05, gt=0)
    n_estimators: int = Field(500, ge=1)
    min_child_samples: int = Field(20, ge=1)
    feature_fraction: float = Field(0.9, gt=0, le=1)
    lambda_l2: float = Field(0.0, ge=0)
    early_stopping_rounds: int = Field(50, ge=0)
    num_threads: int = Field(0, ge=0)
    seed: int = 0
    deterministic: bool = True
    max_categorical_cardinality: int = Field(
        1000, ge=2, description="Sparse fields with at most this many values are categorical."
    )
    categorical_fields: tuple[str, ...] | None = Field(
        None,
        description="Explicit categorical sparse fields (overrides the cardinality rule); "
        "every other sparse field is treated as high-cardinality.",
    )
    high_cardinality: Literal["drop", "numeric"] = "drop"
    sequence_features: Literal["none", "aggregates"] = "aggregates"

    @property
    def outputs_probabilities(self) -> bool:
        """Whether predictions are (down-sampled) probabilities rather than ranking scores."""
        return self.objective == "binary"

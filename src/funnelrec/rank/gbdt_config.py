"""The LightGBM ranker's configuration, importable without LightGBM (or torch).

:class:`~funnelrec.rank.config.RankConfig` embeds it in its model union, and reading or
validating a config must stay cheap; :mod:`funnelrec.rank.gbdt` owns the boosters.

Example:
    >>> LightGBMConfig(num_leaves=15).high_cardinality
    'drop'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LightGBMConfig"]


class LightGBMConfig(BaseModel):
    """Hyper-parameters of the per-task LightGBM boosters (shared by every task).

    ``early_stopping_rounds = 0`` trains all ``n_estimators`` rounds; early stopping also needs
    a validation set. ``num_threads = 0`` lets LightGBM choose (OpenMP default).
    ``deterministic`` asks LightGBM for run-to-run identical models at a small speed cost.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["lightgbm"] = "lightgbm"
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

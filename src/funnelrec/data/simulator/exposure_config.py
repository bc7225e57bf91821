"""The typed config of the logged-exposure simulator (position bias, logging policy, random
traffic): the ground truth every debiasing method in docs/debiasing.md is scored against."""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from funnelrec.data.simulator.plan import examination


class ExposureConfig(BaseModel):
    """Users, items, the examination curve and the policy that logged the slates.

    The generative story: each user and item has a latent vector; the true relevance of an
    item to a user is ``sigmoid(affinity * <u, v> + item_bias + offset)`` (exported, for
    evaluation only). Every request draws ``n_candidates`` items (popularity-weighted), the
    *logging policy* (the previous model: the true relevance seen through per-pair noise)
    orders them by Plackett-Luce sampling at ``temperature`` and shows the first
    ``slate_size``; a share ``random_share`` of the requests shows a uniformly random order
    instead (KuaiRand's ``is_rand`` traffic). A shown item is clicked with probability
    ``curve[position] * relevance`` (the position-based model).

    Example:
        >>> ExposureConfig(curve="none").curve_values().tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        >>> ExposureConfig(curve="power", strength=1.0).curve_values()[:3].round(3).tolist()
        [1.0, 0.5, 0.333]
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="Seed of the generator.")
    n_users: int = Field(2_000, gt=0, description="Users.")
    n_items: int = Field(800, gt=1, description="Established items (candidates of every pool).")
    n_new_items: int = Field(
        0, ge=0, description="New items never in a pool: only exploration shows them."
    )
    dim: int = Field(8, ge=1, le=128, description="Latent dimension of users and items.")
    affinity: float = Field(1.5, ge=0, description="Scale of <u, v> in the relevance logit.")
    offset: float = Field(-1.0, description="Relevance logit offset (sets the mean relevance).")
    item_bias_sd: float = Field(0.7, ge=0, description="Std of the per-item relevance bias.")
    n_requests: int = Field(40_000, gt=0, description="Logged requests (one slate each).")
    n_candidates: int = Field(20, ge=2, description="Items in each request's pool.")
    slate_size: int = Field(6, ge=1, description="Items shown per request (positions 0..K-1).")
    curve: Literal["power", "exponential", "none"] = Field(
        "power",
        description="Examination curve: power (1 + k) ** -strength (the main simulator's "
        "rule), exponential exp(-strength * k), none (no position bias).",
    )
    strength: float = Field(0.8, ge=0, description="Steepness of the curve.")
    policy_noise: float = Field(
        1.0, ge=0, description="Std of the logging model's per-(user, item) logit error."
    )
    policy_popularity: float = Field(
        1.0,
        ge=0,
        description="Weight of log item popularity in the logging model's score: the old "
        "model pushes popular items up, so position and item identity are confounded.",
    )
    temperature: float = Field(
        0.7, gt=0, description="Plackett-Luce temperature of the logging policy (small = greedy)."
    )
    random_share: float = Field(
        0.1, ge=0, le=1, description="Share of requests shown in a uniformly random order."
    )
    explore_epsilon: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Chance that a logged request's explore slot shows a uniformly drawn new "
        "item (epsilon-greedy exploration; its propensity is logged).",
    )
    explore_slot: int = Field(-1, description="The exploration slot (-1 = the last position).")
    propensity_samples: int = Field(
        256, ge=16, description="Plackett-Luce draws per request behind the logged propensities."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.slate_size > self.n_candidates:
            raise ValueError(
                f"slate_size={self.slate_size} must be <= n_candidates={self.n_candidates}"
            )
        if self.n_candidates > self.n_items:
            raise ValueError(f"n_candidates={self.n_candidates} must be <= n_items={self.n_items}")
        if self.explore_epsilon > 0 and self.n_new_items == 0:
            raise ValueError("explore_epsilon > 0 needs n_new_items > 0 (nothing to explore)")
        if not -self.slate_size <= self.explore_slot < self.slate_size:
            raise ValueError(f"explore_slot={self.explore_slot} is outside the slate")
        return self

    def curve_values(self) -> NDArray[np.float64]:
        """``[slate_size]`` the planted examination probability of each position (1 at 0)."""
        if self.curve == "power":
            return examination(self.slate_size, self.strength)
        positions = np.arange(self.slate_size, dtype=np.float64)
        if self.curve == "exponential":
            return np.exp(-self.strength * positions)
        return np.ones(self.slate_size, dtype=np.float64)

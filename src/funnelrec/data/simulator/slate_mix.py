"""Where the items of an impression slate come from: the slate-source mix (its own module, so
that the simulator config and the per-scenario configs share it without an import cycle)."""

from __future__ import annotations

from typing import Self

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator


class SlateMix(BaseModel):
    """Where the items of an impression slate come from (relative weights, normalised).

    Each slot independently picks a source, then an available item (created before the slate's
    time) from it, weighted by intrinsic popularity (``fresh`` draws uniformly).

    Example:
        >>> SlateMix(popular=0.5).popular
        0.5
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    related: float = Field(
        0.45, ge=0, description="The session's anchor cluster (follows the last click)."
    )
    subtopic: float = Field(0.15, ge=0, description="The session's sub-topic.")
    category: float = Field(0.08, ge=0, description="The session's category, any sub-topic.")
    interest: float = Field(0.07, ge=0, description="A category drawn from the user's interests.")
    popular: float = Field(0.15, ge=0, description="Globally popular items, any category.")
    fresh: float = Field(0.10, ge=0, description="Uniform among items created in the fresh window.")

    @model_validator(mode="after")
    def _positive_total(self) -> Self:
        if sum(self.weights(normalise=False)) <= 0:
            raise ValueError("slate_mix needs at least one positive weight")
        return self

    def weights(self, *, normalise: bool = True) -> tuple[float, ...]:
        """``(related, subtopic, category, interest, popular, fresh)`` probabilities."""
        raw = (self.related, self.subtopic, self.category, self.interest, self.popular, self.fresh)
        total = sum(raw) if normalise else 1.0
        return tuple(w / total for w in raw)

    def cumulative(self) -> NDArray[np.float64]:
        """``[6]`` cumulative source probabilities, the last exactly 1 (what the kernel draws
        a slot's source from).

        Example:
            >>> float(SlateMix().cumulative()[-1])
            1.0
        """
        mix = np.cumsum(np.asarray(self.weights(), dtype=np.float64))
        mix[-1] = 1.0
        return mix

"""Settings of the simulator's scenarios: one app, several surfaces (home feed, item detail
page, search) whose users scan slates differently and come with different intents.

A scenario changes three things of the sessions it holds (the compiled loop reads them per
session, :mod:`funnelrec.data.simulator.scenarios`):

* the **position curve**: the examination factor ``(1 + position) ** -position_bias`` (a feed
  is scrolled, so a flat curve; search users read the top results, so a steep one);
* the **click propensity**: a factor on every click probability;
* the **intent**: where its slates come from (its own :class:`SlateMix`: a detail page shows
  items related to the one on screen, search the session's sub-topic) and which categories its
  users engage with (``intent_tilt``: a per-category factor on relevance, drawn once per
  scenario, log-normal with mean 1).

Off by default (no scenarios): nothing is drawn and the simulated log is bit-identical to one
without this block.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from funnelrec.data.simulator.slate_mix import SlateMix

MAX_SCENARIOS = 64


class ScenarioSpec(BaseModel):
    """One scenario's behaviour.

    Example:
        >>> ScenarioSpec(name="search", position_bias=1.4).click_propensity
        1.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=40, description="Value of the scenario column.")
    share: float = Field(1.0, gt=0, description="Relative share of sessions (normalised).")
    position_bias: float | None = Field(
        None,
        ge=0,
        description="Exponent b of this scenario's examination factor (1 + position)^-b "
        "(None = the simulator's position_bias).",
    )
    click_propensity: float = Field(
        1.0, gt=0, description="Factor on every click probability in this scenario."
    )
    intent_tilt: float = Field(
        0.0,
        ge=0,
        le=3,
        description="Log-normal sigma of this scenario's per-category engagement factors "
        "(mean 1; 0 = every category as in the other scenarios).",
    )
    slate_mix: SlateMix | None = Field(
        None, description="Where this scenario's slates come from (None = the simulator's)."
    )


def feed_detail_search() -> tuple[ScenarioSpec, ...]:
    """Three scenarios of a content app: a scrolled home feed (flat position curve, popular and
    fresh items, casual clicks), an item detail page (related items, medium curve) and search
    (the session's sub-topic, steep curve, eager clicks).

    Example:
        >>> [s.name for s in feed_detail_search()]
        ['feed', 'detail', 'search']
    """
    return (
        ScenarioSpec(
            name="feed",
            share=0.5,
            position_bias=0.35,
            click_propensity=0.8,
            intent_tilt=0.8,
            slate_mix=SlateMix(
                related=0.15, subtopic=0.1, category=0.1, interest=0.25, popular=0.25, fresh=0.15
            ),
        ),
        ScenarioSpec(
            name="detail",
            share=0.3,
            position_bias=0.9,
            click_propensity=1.0,
            intent_tilt=0.8,
            slate_mix=SlateMix(
                related=0.7, subtopic=0.15, category=0.05, interest=0.0, popular=0.05, fresh=0.05
            ),
        ),
        ScenarioSpec(
            name="search",
            share=0.2,
            position_bias=1.5,
            click_propensity=1.6,
            intent_tilt=0.8,
            slate_mix=SlateMix(
                related=0.3, subtopic=0.4, category=0.25, interest=0.0, popular=0.05, fresh=0.0
            ),
        ),
    )


class ScenarioConfig(BaseModel):
    """The scenarios of a simulation (none by default).

    Each session belongs to one scenario, drawn from the user's own scenario mix: a Dirichlet
    around the scenarios' shares with total concentration ``user_concentration`` (some users
    mostly search, others mostly scroll), or the shares themselves when it is None.

    Example:
        >>> ScenarioConfig().enabled
        False
        >>> ScenarioConfig(specs=feed_detail_search()).names
        ('feed', 'detail', 'search')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    specs: tuple[ScenarioSpec, ...] = Field(
        (), description="The scenarios; empty = off (no scenario column)."
    )
    user_concentration: float | None = Field(
        5.0,
        gt=0,
        description="Total Dirichlet concentration of each user's scenario mix around the "
        "shares (small = users keep to one scenario; None = every user the shares).",
    )

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario names must be distinct, got {names}")
        if len(names) > MAX_SCENARIOS:
            raise ValueError(f"at most {MAX_SCENARIOS} scenarios, got {len(names)}")
        return self

    @property
    def enabled(self) -> bool:
        """Whether sessions are split into scenarios (and the log gets a scenario column)."""
        return bool(self.specs)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    @classmethod
    def preset(cls) -> ScenarioConfig:
        """:func:`feed_detail_search` with the default user mix."""
        return cls(specs=feed_detail_search())

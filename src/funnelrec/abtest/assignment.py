"""Deterministic traffic assignment: orthogonal layers, exclusive slots, arms.

A user's bucket in a layer is ``hash(layer salt, user id) mod n_buckets``; experiments of one
layer own disjoint bucket ranges (a user is in at most one experiment per layer), and layers
hash with different salts, so assignments in two layers are independent: overlapping
experiments in different layers do not confound each other (Tang et al., "Overlapping
Experiment Infrastructure", KDD 2010). Inside an experiment the arm comes from a second hash
salted with the experiment's name, so widening an experiment's bucket range does not move its
existing users between arms.

Example:
    >>> plan = ExperimentPlan.model_validate({"layers": [{"name": "rerank", "experiments": [
    ...     {"name": "dpp", "buckets": [0, 500], "arms": {"control": 1, "theta_080": 1}}]}]})
    >>> a = plan.assign("user-1")
    >>> a == plan.assign("user-1"), sorted(a)
    (True, ['rerank'])
"""

from __future__ import annotations

import hashlib
import itertools
import tomllib
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from funnelrec.errors import ConfigError

N_BUCKETS = 1000
"""Buckets per layer: an experiment's traffic is set in steps of 0.1%."""


def hash_unit(salt: str, user_id: str) -> int:
    """A stable 64-bit hash of ``salt`` and ``user_id`` (BLAKE2b: the same on every machine
    and Python version, unlike ``hash``)."""
    digest = hashlib.blake2b(f"{salt}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class ExperimentSpec(BaseModel):
    """One experiment: the buckets of its layer it owns and its arms' weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    buckets: tuple[int, int] = Field(description="[start, end) of the layer's buckets.")
    arms: dict[str, float] = Field(min_length=2, description="Arm name -> traffic weight.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        start, end = self.buckets
        if not 0 <= start < end <= N_BUCKETS:
            raise ValueError(f"buckets {self.buckets} must satisfy 0 <= start < end <= {N_BUCKETS}")
        bad = sorted(name for name, w in self.arms.items() if not w > 0)
        if bad:
            raise ValueError(f"arm weights must be positive: {bad}")
        return self

    def arm(self, user_id: str) -> str:
        """The user's arm (call only for users inside :attr:`buckets`)."""
        total = sum(self.arms.values())
        point = hash_unit(f"arm:{self.name}", user_id) / 2.0**64 * total
        for name, weight in self.arms.items():
            point -= weight
            if point < 0:
                return name
        return next(reversed(self.arms))  # float rounding at the very top


class Layer(BaseModel):
    """Experiments that must not share a user (e.g. two re-ranking changes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    experiments: tuple[ExperimentSpec, ...] = ()

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        spans = sorted((e.buckets, e.name) for e in self.experiments)
        for (first, a), (second, b) in itertools.pairwise(spans):
            if second[0] < first[1]:
                raise ValueError(f"layer '{self.name}': '{a}' {first} and '{b}' {second} overlap")
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError(f"layer '{self.name}': duplicate experiment names {names}")
        return self

    def bucket(self, user_id: str) -> int:
        return hash_unit(f"layer:{self.name}", user_id) % N_BUCKETS


class Assignment(BaseModel):
    """Where a user landed in one layer (what a request logs)."""

    model_config = ConfigDict(frozen=True)

    experiment: str
    arm: str
    bucket: int


class ExperimentPlan(BaseModel):
    """Every running experiment, by layer (the experiments file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: tuple[Layer, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate layer names {names}")
        experiments = [e.name for layer in self.layers for e in layer.experiments]
        if len(set(experiments)) != len(experiments):
            raise ValueError(f"experiment names must be unique across layers: {experiments}")
        return self

    @classmethod
    def from_toml(cls, path: Path) -> ExperimentPlan:
        """Read an experiments file; a malformed one is a :class:`ConfigError` naming it."""
        try:
            return cls.model_validate(tomllib.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError) as e:
            raise ConfigError(f"{path}: not a valid experiments file ({e})") from None

    def assign(self, user_id: str) -> dict[str, Assignment]:
        """``{layer: Assignment}`` for every layer where the user falls in an experiment."""
        out: dict[str, Assignment] = {}
        for layer in self.layers:
            bucket = layer.bucket(user_id)
            for experiment in layer.experiments:
                start, end = experiment.buckets
                if start <= bucket < end:
                    out[layer.name] = Assignment(
                        experiment=experiment.name, arm=experiment.arm(user_id), bucket=bucket
                    )
                    break
        return out


__all__ = [
    "N_BUCKETS",
    "Assignment",
    "ExperimentPlan",
    "ExperimentSpec",
    "Layer",
    "hash_unit",
]

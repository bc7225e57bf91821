"""A counter-free splitmix64 stream for numba kernels: one independent stream per user.

Each user's stream is seeded from a key drawn by the config's ``np.random.Generator``, so the
simulation is deterministic per seed, independent of batching and of any global RNG state.
State lives in a one-element ``uint64`` array that the helpers advance in place.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0
_TWO_PI = 2.0 * math.pi


@numba.njit(cache=True)
def mix64(z: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """The splitmix64 finaliser: a bijective avalanche of one 64-bit word."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(cache=True)
def to_unit(z: np.uint64) -> float:  # pragma: no cover - compiled
    """A 64-bit word -> a float in ``[0, 1)`` (53 random bits)."""
    return float(z >> _S11) * _INV_2_53


@numba.njit(cache=True)
def uniform(state: np.ndarray) -> float:  # pragma: no cover - compiled
    """Next uniform in ``[0, 1)``; advances ``state`` ``[1] uint64``."""
    state[0] += _GOLDEN
    return to_unit(mix64(state[0]))


@numba.njit(cache=True)
def normal(state: np.ndarray) -> float:  # pragma: no cover - compiled
    """Next standard normal (Box-Muller, one of the pair)."""
    u1 = 1.0 - uniform(state)
    u2 = uniform(state)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


@numba.njit(cache=True)
def lognormal(state: np.ndarray, median: float, sigma: float) -> float:  # pragma: no cover
    """Next log-normal draw with the given median and log-scale sigma."""
    return median * math.exp(sigma * normal(state))


@numba.njit(cache=True)
def pair_unit(key: np.uint64, a: int, b: int) -> float:  # pragma: no cover - compiled
    """A fixed pseudo-random float in ``[0, 1)`` for the pair ``(a, b)`` under ``key``."""
    z = mix64(key ^ (np.uint64(a) * _MIX1))
    return to_unit(mix64(z ^ (np.uint64(b) * _MIX2 + _GOLDEN)))

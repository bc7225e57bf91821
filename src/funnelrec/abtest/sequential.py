"""Peeking-safe testing: the mixture sequential probability ratio test (mSPRT).

Looking at a fixed-horizon test every day and stopping at the first ``p < alpha`` inflates the
false-positive rate far above ``alpha`` (each look is another chance). The mSPRT (Johari,
Pekelis & Walsh, "Always Valid Inference", 2017) compares "no effect" with a normal mixture
``theta ~ N(0, tau^2)`` of effects; for an estimated difference ``d`` with variance ``V``,

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))

is a martingale under the null, so by Ville's inequality ``P(sup Lambda >= 1/alpha) <=
alpha``: the always-valid p-value ``p_n = min(p_{n-1}, 1 / Lambda_n)`` may be read after every
day and the experiment stopped as soon as it drops below ``alpha``. ``tau`` sets where the
test is most sensitive: the size of effects worth finding (e.g. the minimum detectable effect).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from funnelrec.abtest.stats import Effect


def msprt_likelihood_ratio(diff: float, variance: float, tau: float) -> float:
    """``Lambda`` of the module docstring for one look (``variance`` of ``diff`` > 0).

    Example:
        >>> msprt_likelihood_ratio(0.0, 1.0, 1.0) < 1 < msprt_likelihood_ratio(5.0, 1.0, 1.0)
        True
    """
    if variance <= 0 or tau <= 0:
        raise ValueError(f"variance ({variance}) and tau ({tau}) must be positive")
    total = variance + tau**2
    log_ratio = 0.5 * np.log(variance / total) + tau**2 * diff**2 / (2 * variance * total)
    return float(np.exp(min(log_ratio, 700.0)))  # exp overflows past ~709


def always_valid_p_values(looks: Sequence[Effect], tau: float) -> list[float]:
    """The always-valid p-value after each look (running minimum of ``1 / Lambda``, capped at
    1); stop at the first look below ``alpha``.

    Args:
        looks: the cumulative effect estimate at each look (e.g. day 1, days 1-2, ...).
        tau: the mixture's standard deviation, in the metric's units.
    """
    out: list[float] = []
    current = 1.0
    for look in looks:
        ratio = msprt_likelihood_ratio(look.diff, look.se**2, tau) if look.se > 0 else np.inf
        current = min(current, 1.0 / ratio)
        out.append(float(current))
    return out


def first_rejection(p_values: Sequence[float], alpha: float = 0.05) -> int | None:
    """Index of the first look with ``p < alpha`` (None: never)."""
    return next((i for i, p in enumerate(p_values) if p < alpha), None)


__all__ = ["always_valid_p_values", "first_rejection", "msprt_likelihood_ratio"]

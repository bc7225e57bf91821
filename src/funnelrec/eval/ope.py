"""Off-policy evaluation of a ranking policy from the logs of another (docs/debiasing.md).

The value of a policy is its expected clicks per request. Under the item-position model
(a click depends on the item and its position only, Li et al. 2018) a logged slot
``(item, k)`` says something about a new policy exactly when the new policy would put the same
item at ``k``, so with ``m = 1[new[k] == logged[k]]`` and the logged propensity ``p`` of that
item at that position:

* IPS: ``mean_r sum_k m * click / max(p, clip)``;
* SNIPS: per position, the IPS sum divided by ``sum_r m / max(p, clip)`` (times R), which
  removes the scale error of the weights at some bias;
* doubly robust: a direct model ``q(r, item, k)`` of the expected click, corrected by the
  IPS-weighted residual of the logged slots: ``mean_r sum_k [q(r, new_k, k) +
  m * (click - q(r, logged_k, k)) / max(p, clip)]``.

Example:
    >>> logged = np.array([[1, 2], [2, 1]])
    >>> clicks = np.array([[1, 0], [0, 1]])
    >>> p = np.full((2, 2), 0.5)
    >>> ope_estimates(logged, clicks, p, logged, clip=0.01)["ips"]  # same policy, p = 1/2
    2.0
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def top_slates(pools: NDArray[np.int64], scores: NDArray[np.float64], k: int) -> NDArray[np.int64]:
    """``[R, k]`` the deterministic policy that shows each pool's ``k`` best-scored items.

    Example:
        >>> top_slates(np.array([[7, 8, 9]]), np.array([[0.1, 0.9, 0.5]]), 2).tolist()
        [[8, 9]]
    """
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(pools, order, axis=1)


def ope_estimates(
    logged: NDArray[np.int64],
    clicks: NDArray[np.integer],
    propensity: NDArray[np.float64],
    target: NDArray[np.int64],
    *,
    clip: float = 0.01,
    q_target: NDArray[np.float64] | None = None,
    q_logged: NDArray[np.float64] | None = None,
) -> dict[str, float]:
    """IPS, SNIPS and (given a direct model) DR and DM values of ``target``.

    Args:
        logged: ``[R, K]`` logged slates.
        clicks: ``[R, K]`` logged clicks.
        propensity: ``[R, K]`` logging probability of each logged item at its position.
        target: ``[R, K]`` the new policy's slates for the same requests.
        clip: propensity floor.
        q_target / q_logged: ``[R, K]`` the direct model's expected click of the target's
            and the logged items at each position (both or neither).

    Returns:
        ``ips``, ``snips``, ``match_rate`` (share of slots where the policies agree) and, with
        a direct model, ``dm`` and ``dr``.
    """
    if (q_target is None) != (q_logged is None):
        raise ValueError("give both q_target and q_logged, or neither")
    match = (target == logged).astype(np.float64)
    w = match / np.maximum(propensity, clip)  # [R, K]
    c = clicks.astype(np.float64)
    r = logged.shape[0]
    per_position = (w * c).sum(axis=0)  # [K]
    norm = w.sum(axis=0)
    snips = np.where(norm > 0, per_position / np.maximum(norm, 1e-12), 0.0).sum()
    out = {
        "ips": float(per_position.sum() / r),
        "snips": float(snips),
        "match_rate": float(match.mean()),
    }
    if q_target is not None and q_logged is not None:
        dm = q_target.sum(axis=1)
        out["dm"] = float(dm.mean())
        out["dr"] = float((dm + (w * (c - q_logged)).sum(axis=1)).mean())
    return out


__all__ = ["ope_estimates", "top_slates"]

"""How well a set of semantic ids uses its codebooks and how often items share a full code."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from funnelrec.features.semantic_ids.codes import prefix_keys


@dataclass(frozen=True)
class CodeStats:
    """Codebook utilisation and collisions of ``n_items`` codes.

    Attributes:
        n_items: items measured.
        sizes: codebook size per level.
        used: distinct codes used per level.
        utilisation: ``used / sizes`` per level.
        perplexity: ``exp(entropy)`` of each level's code frequencies: the number of equally
            used codes that would spread items as evenly (``<= used``).
        distinct_prefixes: distinct prefixes of length ``1 .. L`` (the last: full codes).
        collision_rate: share of items whose full code at least one other item also has.
        max_bucket: most items on one full code.
    """

    n_items: int
    sizes: tuple[int, ...]
    used: tuple[int, ...]
    utilisation: tuple[float, ...]
    perplexity: tuple[float, ...]
    distinct_prefixes: tuple[int, ...]
    collision_rate: float
    max_bucket: int

    def as_dict(self) -> dict[str, Any]:
        """Plain types, for JSON."""
        return asdict(self)


def _perplexity(values: NDArray[np.integer]) -> float:
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def code_stats(codes: NDArray[np.integer], sizes: tuple[int, ...]) -> CodeStats:
    """Utilisation per level and the collision rate of full codes.

    Args:
        codes: ``[N, L]`` codes of the items to measure (``N >= 1``).
        sizes: the ``L`` codebook sizes.

    Returns:
        :class:`CodeStats`.

    Example:
        >>> s = code_stats(np.array([[0, 0], [0, 1], [1, 0], [1, 0]]), (2, 4))
        >>> s.utilisation, s.collision_rate, s.max_bucket
        ((1.0, 0.5), 0.5, 2)
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.shape[0] == 0:
        raise ValueError("code_stats: no codes to measure")
    keys = prefix_keys(codes, sizes)
    used = tuple(int(np.unique(codes[:, level]).shape[0]) for level in range(len(sizes)))
    _, inverse, counts = np.unique(keys[:, -1], return_inverse=True, return_counts=True)
    return CodeStats(
        n_items=int(codes.shape[0]),
        sizes=tuple(int(s) for s in sizes),
        used=used,
        utilisation=tuple(u / s for u, s in zip(used, sizes, strict=True)),
        perplexity=tuple(_perplexity(codes[:, level]) for level in range(len(sizes))),
        distinct_prefixes=tuple(
            int(np.unique(keys[:, level]).shape[0]) for level in range(len(sizes))
        ),
        collision_rate=float((counts[inverse] > 1).mean()),
        max_bucket=int(counts.max()),
    )

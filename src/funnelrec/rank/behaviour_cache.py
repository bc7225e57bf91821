"""Per-user cache of a long-sequence ranker's behaviour-side work (TWIN's key/value
projections, ETA's SimHash signatures), for served requests.

A served request scores one user's candidates, so every row of its batch holds the same
behaviour sequence. A model that can split its work into a behaviour side (independent of the
candidate and of the request time) and the rest (:class:`ProjectsBehaviours`: TWIN, ETA) then
computes the behaviour side once per request instead of once per candidate, and this cache
keeps it across requests, keyed by the sequence itself (item and category codes): a new event
changes the user's sequence and so the key, and the stale entry ages out of the LRU, so a
cached projection can never be served for a sequence it was not computed from. The cache
belongs to the fitted ranker: a reloaded artifact starts with an empty one.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, TypeGuard

import torch
from torch import Tensor

Batch = dict[str, Tensor]
Projection = tuple[Tensor, ...]


class ProjectsBehaviours(Protocol):
    """A ranker network whose behaviour side can be computed once per sequence."""

    def behaviour_projection(self, seq_item: Tensor, seq_category: Tensor) -> Projection: ...

    def __call__(self, batch: Batch, cache: Projection | None = None) -> dict[str, Tensor]: ...


def projects_behaviours(network: object) -> TypeGuard[ProjectsBehaviours]:
    """Whether ``network`` has a behaviour side to cache (:class:`ProjectsBehaviours`): an
    attribute lookup, where a runtime protocol check would cost every served request
    ~15 us for every other model kind."""
    return callable(getattr(network, "behaviour_projection", None))


def one_sequence(batch: Batch) -> bool:
    """True when the batch has more than one row and every row holds row 0's behaviours and
    gaps (one user's request at one time): what the one-user path of the model needs."""
    item = batch.get("seq_item")
    if item is None or item.shape[0] < 2 or item.shape[1] == 0:
        return False
    return all(
        torch.equal(batch[key], batch[key][:1].expand_as(batch[key]))
        for key in ("seq_item", "seq_category", "seq_gap")
    )


class BehaviourCache:
    """LRU of ``sequence -> projection`` (tensors ``[1, L, ...]``, e.g. TWIN's keys and values)
    within a memory budget.

    Args:
        max_bytes: what the cached tensors may hold in all; 0 keeps nothing (every request
            projects its sequence, still once per request).

    Example:
        >>> cache = BehaviourCache(max_bytes=1 << 20)
        >>> item, category = torch.tensor([[3, 1, 0]]), torch.tensor([[1, 1, 0]])
        >>> calls = []
        >>> def project(i, c):
        ...     calls.append(1)
        ...     return torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)
        >>> _ = cache.get(item, category, project); _ = cache.get(item, category, project)
        >>> len(calls), cache.hits, cache.misses
        (1, 1, 1)
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, Projection] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        seq_item: Tensor,
        seq_category: Tensor,
        project: Callable[[Tensor, Tensor], Projection],
    ) -> Projection:
        """The projection of the one sequence ``seq_item``/``seq_category`` (``[1, L]``),
        from the cache or from ``project(seq_item, seq_category)``."""
        key = _key(seq_item, seq_category)
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found
        self.misses += 1
        projection: Projection = project(seq_item, seq_category)
        size = sum(t.element_size() * t.nelement() for t in projection)
        if size > self.max_bytes:
            return projection
        self._entries[key] = projection
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= sum(t.element_size() * t.nelement() for t in evicted)
        return projection


def _key(seq_item: Tensor, seq_category: Tensor) -> bytes:
    """A digest of the sequence's codes (the length is part of it: the shapes differ)."""
    digest = hashlib.blake2b(digest_size=16)
    for codes in (seq_item, seq_category):
        digest.update(codes.detach().cpu().contiguous().numpy().tobytes())
    return digest.digest()


__all__ = ["BehaviourCache", "ProjectsBehaviours", "one_sequence", "projects_behaviours"]

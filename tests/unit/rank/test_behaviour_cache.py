"""The per-user behaviour cache of long-sequence rankers: keyed by the sequence itself, bounded
by memory, used only for batches of one user's sequence."""

from __future__ import annotations

import torch

from funnelrec.rank.behaviour_cache import BehaviourCache, one_sequence


def projector(calls: list[int]):
    def project(item: torch.Tensor, category: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(1)
        keys = (item + category).to(torch.float32).unsqueeze(-1).expand(-1, -1, 4)
        return keys.clone(), keys.clone()

    return project


def test_a_changed_sequence_is_a_miss_and_the_same_sequence_a_hit() -> None:
    cache, calls = BehaviourCache(max_bytes=1 << 20), []
    item, category = torch.tensor([[5, 4, 0]]), torch.tensor([[1, 2, 0]])
    first = cache.get(item, category, projector(calls))
    again = cache.get(item.clone(), category.clone(), projector(calls))
    assert len(calls) == 1 and again[0] is first[0]
    # A new event shifts the sequence: the user's cached projection is not reused.
    newer = cache.get(torch.tensor([[6, 5, 4]]), torch.tensor([[3, 1, 2]]), projector(calls))
    assert len(calls) == 2 and not torch.equal(newer[0], first[0])
    # Same items, other categories: another key.
    cache.get(item, torch.tensor([[2, 2, 0]]), projector(calls))
    assert (cache.hits, cache.misses, len(cache)) == (1, 3, 3)


def test_the_memory_budget_evicts_the_least_recently_used() -> None:
    entry = 2 * 3 * 4 * 4  # keys + values, [1, 3, 4] float32
    cache, calls = BehaviourCache(max_bytes=2 * entry), []
    seqs = [torch.tensor([[i, 1, 1]]) for i in range(1, 4)]
    cats = torch.ones(1, 3, dtype=torch.long)
    cache.get(seqs[0], cats, projector(calls))
    cache.get(seqs[1], cats, projector(calls))
    cache.get(seqs[0], cats, projector(calls))  # seqs[0] is now the most recent
    cache.get(seqs[2], cats, projector(calls))  # evicts seqs[1]
    assert len(cache) == 2
    cache.get(seqs[0], cats, projector(calls))
    assert len(calls) == 3
    cache.get(seqs[1], cats, projector(calls))
    assert len(calls) == 4


def test_a_zero_budget_keeps_nothing() -> None:
    cache, calls = BehaviourCache(max_bytes=0), []
    item = torch.tensor([[1, 2]])
    for _ in range(2):
        cache.get(item, item, projector(calls))
    assert len(calls) == 2 and len(cache) == 0


def test_one_sequence_needs_identical_rows_of_items_categories_and_gaps() -> None:
    row = {"seq_item": torch.tensor([[3, 2, 0]]), "seq_category": torch.tensor([[1, 1, 0]]),
           "seq_gap": torch.tensor([[0.5, 2.0, 0.0]])}  # fmt: skip
    batch = {k: v.expand(4, -1).clone() for k, v in row.items()}
    assert one_sequence(batch)
    assert not one_sequence(row)  # one row: nothing to share
    for key in row:
        other = {k: v.clone() for k, v in batch.items()}
        other[key][2, 0] += 1
        assert not one_sequence(other), key
    assert not one_sequence({"sparse": torch.ones(4, 2)})

"""A worker's shard of a two-tower batch: its rows, the candidates they need, re-pointed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from funnelrec.recall.two_tower.data import shard_batch


def global_batch() -> dict[str, torch.Tensor]:
    """5 rows over 7 distinct candidates (ids 10..16), 2 uniform, 1 hard per row."""
    rng = np.random.default_rng(0)
    cand = torch.arange(10, 17)
    pos = torch.tensor([0, 1, 2, 1, 3])
    uniform = torch.tensor([4, 5])
    hard = torch.tensor([[6], [0], [3], [6], [2]])
    return {
        "user_attr": torch.arange(5)[:, None],
        "hist_item": torch.from_numpy(rng.integers(0, 9, (5, 3))),
        "hist_category": torch.from_numpy(rng.integers(0, 3, (5, 3))),
        "cand_id": cand,
        "cand_category": cand % 3,
        "cand_time": cand % 4,
        "cand_content": cand[:, None].float().repeat(1, 2),
        "pos": pos,
        "uniform": uniform,
        "hard": hard,
        "pos_item": cand[pos],
        "uniform_item": cand[uniform],
        "hard_item": cand[hard],
        "pos_logq": torch.linspace(-1, 1, 5),
        "uniform_logq": torch.tensor([0.5, 0.7]),
    }


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_hold_their_rows_and_the_same_candidate_items(world: int) -> None:
    batch = global_batch()
    rows = []
    for rank in range(world):
        shard = shard_batch(batch, rank, world)
        lo = int(shard["row_offset"])
        n = shard["user_attr"].shape[0]
        rows.append(n)
        assert shard["shard_sizes"].sum() == 5 and int(shard["shard_sizes"][rank]) == n
        torch.testing.assert_close(shard["user_attr"], batch["user_attr"][lo : lo + n])
        # Positions point at the same items (and their features) as in the global batch.
        for key, rows_of in [("pos", slice(lo, lo + n)), ("hard", slice(lo, lo + n))]:
            got = shard["cand_id"][shard[key]]
            torch.testing.assert_close(got, batch["cand_id"][batch[key][rows_of]])
        torch.testing.assert_close(
            shard["cand_content"][shard["uniform"]], batch["cand_content"][batch["uniform"]]
        )
        # Only the candidates the rows need, and the in-batch columns stay global.
        assert shard["cand_id"].shape[0] <= batch["cand_id"].shape[0]
        torch.testing.assert_close(shard["pos_item"], batch["pos_item"])
    assert sum(rows) == 5

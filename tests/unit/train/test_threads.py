"""torch_threads: the thread count inside the block, the caller's afterwards."""

from __future__ import annotations

import torch

from funnelrec.train.threads import torch_threads


def test_threads_are_set_inside_and_restored_after() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before

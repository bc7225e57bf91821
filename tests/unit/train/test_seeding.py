"""forked_seed: seeded torch randomness inside, the caller's RNG state untouched outside."""

from __future__ import annotations

import torch

from funnelrec.train.seeding import forked_seed


def test_the_block_is_seeded_and_the_caller_state_comes_back() -> None:
    cpu = torch.device("cpu")
    torch.manual_seed(7)
    before = torch.get_rng_state()
    with forked_seed(3, cpu):
        a = torch.nn.functional.dropout(torch.ones(64), 0.5)
    assert torch.equal(torch.get_rng_state(), before)
    with forked_seed(3, cpu):
        b = torch.nn.functional.dropout(torch.ones(64), 0.5)
    with forked_seed(4, cpu):
        c = torch.nn.functional.dropout(torch.ones(64), 0.5)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)

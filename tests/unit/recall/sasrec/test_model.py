"""The SASRec network: causal (no position reads a later one), padding-safe, seeded."""

from __future__ import annotations

import torch

from funnelrec.recall.sasrec.config import SASRecConfig
from funnelrec.recall.sasrec.model import SASRecModel, attention_mask, pad_id
from funnelrec.recall.two_tower.model import init_parameters

N_ITEMS = 30
PAD = pad_id(N_ITEMS)
CONFIG = SASRecConfig(dim=16, heads=2, blocks=2, ffn_dim=32, max_len=8, dropout=0.2)


def model(seed: int = 0) -> SASRecModel:
    net = SASRecModel(CONFIG, N_ITEMS)
    init_parameters(net, torch.Generator().manual_seed(seed))
    return net.eval()


def test_a_position_never_depends_on_later_items() -> None:
    net = model()
    seq = torch.tensor([[PAD, PAD, 3, 7, 1, 9, 4, 2]])
    changed = seq.clone()
    changed[0, 5:] = torch.tensor([11, 12, 13])
    a, b = net.encode(seq), net.encode(changed)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-3)


def test_padding_is_never_read_and_gives_no_nan() -> None:
    net = model()
    short = torch.tensor([[PAD, PAD, PAD, PAD, PAD, 3, 7, 1]])
    trimmed = short[:, 5:]  # right-aligned: the same positions without the padding
    full, cut = net.encode(short), net.encode(trimmed)
    assert torch.isfinite(full).all()
    assert torch.allclose(full[:, 5:], cut, atol=1e-5)
    assert torch.isfinite(net.user(torch.full((2, 8), PAD))).all()


def test_the_mask_is_causal_over_real_keys_with_self_attention_always_allowed() -> None:
    mask = attention_mask(torch.tensor([[PAD, 4, 5, 6]]), PAD)[0, 0]
    assert mask.tolist() == [
        [True, False, False, False],
        [False, True, False, False],
        [False, True, True, False],
        [False, True, True, True],
    ]


def test_the_user_vector_is_the_last_position_and_scores_use_the_shared_table() -> None:
    net = model()
    seq = torch.tensor([[PAD, 2, 3, 4, 5, 6, 7, 8]])
    assert torch.equal(net.user(seq), net.encode(seq)[:, -1])
    batch = {"seq": seq, "positions": torch.tensor([7]), "cand_item": torch.tensor([9, 10, 11])}
    expected = net.user(seq) @ net.item.weight[[9, 10, 11]].T
    assert torch.allclose(net(batch)["candidates"], expected)
    assert net.item_vectors().shape == (N_ITEMS, 16)


def test_initialisation_is_seeded_and_padding_row_is_zero() -> None:
    a, b = model(3), model(3)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert not a.item.weight[PAD].detach().any()

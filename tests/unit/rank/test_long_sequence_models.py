"""Long-sequence rankers (SIM hard/soft, ETA, SDIM, TWIN) and their shared modules: shapes,
exact masking, search correctness against brute force, the TWIN cache, a long-range task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from sklearn.metrics import roc_auc_score
from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models import (
    ETA,
    SDIM,
    TWIN,
    DINConfig,
    ETAConfig,
    LongSequenceModel,
    RankModelConfig,
    SDIMConfig,
    SIMHard,
    SIMHardConfig,
    SIMSoft,
    SIMSoftConfig,
    TWINConfig,
    build_rank_model,
)
from funnelrec.rank.models.config import MLPConfig
from funnelrec.rank.modules import (
    GapBuckets,
    MultiHeadTargetAttention,
    SimHash,
    chunked,
    collisions,
    hamming,
    select_top_k,
)
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.loop import train

L = 12
EPOCHS = 4
SPEC = FeatureSpec(("user", "item", "category", "context"), (11, 40, 6, 4), 3, L, 1, 2,
                   ("click", "buy"))  # fmt: skip
KINDS = ("sim_hard", "sim_soft", "eta", "sdim", "twin")
ADAPTER: TypeAdapter[RankModelConfig] = TypeAdapter(RankModelConfig)
CUDA = [pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                      reason="no CUDA device"))]  # fmt: skip


def small_config(kind: str, **extra: object) -> RankModelConfig:
    """Small layers; search_chunk 5 makes the search run in 3 slices of the 12 positions."""
    own = {"eta": {"n_bits": 16}, "sdim": {"n_hashes": 4, "hash_bits": 2}}.get(kind, {})
    search = {} if kind == "sdim" else {"k": 4, "n_heads": 2}
    base = {"embed_dim": 4, "short_len": 3, "search_chunk": 5, "deep": {"hidden": (16,)},
            "short_attention": {"hidden": (8,)}}  # fmt: skip
    return ADAPTER.validate_python({"kind": kind, **base, **search, **own, **extra})


def long_batch(n: int = 16, seed: int = 0, spec: FeatureSpec = SPEC) -> dict[str, Tensor]:
    """Histories of random lengths 0..L (row 0 empty, row 1 full), categories 1..5 at real
    behaviours, 0 at padding; candidate item and category codes >= 1."""
    g = torch.Generator().manual_seed(seed)
    cards, length = spec.sparse_cardinalities, spec.seq_len
    sparse = torch.stack([torch.randint(1, c, (n,), generator=g) for c in cards], dim=1)
    lengths = torch.randint(0, length + 1, (n, 1), generator=g)
    lengths[0], lengths[1] = 0, length
    real = torch.arange(length)[None, :] < lengths
    seq_item = torch.randint(1, cards[spec.item_field], (n, length), generator=g) * real
    seq_cat = torch.randint(1, cards[spec.category_field], (n, length), generator=g) * real
    batch = {
        "sparse": sparse,
        "dense": torch.randn(n, spec.n_dense, generator=g),
        "seq_item": seq_item,
        "seq_category": seq_cat,
        "seq_gap": torch.rand(n, length, generator=g) * 15 * real,
    }
    for task in spec.tasks:
        batch[f"label_{task}"] = (torch.rand(n, generator=g) < 0.3).float()
    return batch


def build(kind: str, **extra: object) -> LongSequenceModel:
    model = build_rank_model(small_config(kind, **extra), SPEC)
    assert isinstance(model, LongSequenceModel)
    return model


# --------------------------------------------------------------------------- every kind


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_are_finite_logits_and_gradients_reach_the_table(kind: str) -> None:
    model = build(kind)
    out = model(long_batch())
    assert list(out) == list(SPEC.tasks)
    assert all(v.shape == (16,) and v.dtype == torch.float32 for v in out.values())
    assert all(torch.isfinite(v).all() for v in out.values())
    sum(v.sum() for v in out.values()).backward()
    grad = model.embedding.table.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    # The long-term unit's gradient reaches behaviour rows (short_len=0: only it reads them).
    model = build(kind, short_len=0)
    batch = long_batch()
    sum(v.sum() for v in model(batch).values()).backward()
    grad = model.embedding.table.weight.grad
    assert grad is not None
    rows = model.embedding.offsets[SPEC.item_field] + batch["seq_item"][batch["seq_item"] > 0]
    candidates = model.embedding.offsets[SPEC.item_field] + batch["sparse"][:, 1]
    only_behaviours = sorted(set(rows.tolist()) - set(candidates.tolist()))
    assert grad[only_behaviours].abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_padding_positions_do_not_change_the_output(kind: str) -> None:
    model = build(kind).eval()
    batch = long_batch()
    pad = batch["seq_item"] == 0
    g = torch.Generator().manual_seed(5)
    changed = dict(batch)
    noise_cat = torch.randint(1, SPEC.sparse_cardinalities[2], pad.shape, generator=g)
    changed["seq_category"] = torch.where(pad, noise_cat, batch["seq_category"])
    changed["seq_gap"] = torch.where(pad, torch.rand(pad.shape, generator=g) * 20, batch["seq_gap"])
    with torch.no_grad():
        before = model(batch)
        after = model(changed)
        # The padding rows of the table (item 0, category 0) are read by padding only here.
        offsets = model.embedding.offsets
        model.embedding.table.weight[offsets[1]] += 3.0
        model.embedding.table.weight[offsets[2]] -= 2.0
        moved = model(changed)
    for task in SPEC.tasks:
        torch.testing.assert_close(after[task], before[task])
        torch.testing.assert_close(moved[task], before[task])


@pytest.mark.parametrize("kind", KINDS)
def test_all_padding_rows_are_finite_with_zero_long_term_interest(kind: str) -> None:
    model = build(kind)
    batch = long_batch(n=4)
    for key in ("seq_item", "seq_category"):
        batch[key] = torch.zeros_like(batch[key])
    batch["seq_gap"] = torch.zeros_like(batch["seq_gap"])
    out = model(batch)
    assert all(torch.isfinite(v).all() for v in out.values())
    picked = model.pick(batch)
    assert not picked.valid.any()
    _, query, _, behaviours = model.embed(batch, picked.codes)
    interest = model.long_interest(query, behaviours, picked)
    assert torch.equal(interest, torch.zeros_like(interest))
    sum(v.sum() for v in out.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("kind", KINDS)
def test_rows_are_scored_independently_and_the_search_chunk_does_not_matter(kind: str) -> None:
    model = build(kind).eval()
    whole = build(kind, search_chunk=1000).eval()
    batch = long_batch(n=9)
    with torch.no_grad():
        full = model(batch)
        torch.testing.assert_close(whole(batch), full)
        for row in (0, 1, 8):
            alone = model({k: v[row : row + 1] for k, v in batch.items()})
            for task in SPEC.tasks:
                torch.testing.assert_close(alone[task][0], full[task][row])


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_construction_is_reproducible_and_leaves_global_rng_alone(kind: str) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = build(kind, seed=7), build(kind, seed=7), build(kind, seed=8)
    torch.testing.assert_close(torch.rand(3), expected)
    assert list(a.state_dict()) == list(b.state_dict())
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)
    batch = long_batch()
    torch.testing.assert_close(a.eval()(batch), b.eval()(batch))
    assert not torch.equal(a.embedding.table.weight, c.embedding.table.weight)


@pytest.mark.parametrize("device", CUDA)
@pytest.mark.parametrize("kind", KINDS)
def test_runs_on_cuda_like_on_cpu(kind: str, device: str) -> None:
    model = build(kind).eval()
    batch = long_batch()
    with torch.no_grad():
        expected = model(batch)
        out = model.to(device)({k: v.to(device) for k, v in batch.items()})
    for task in SPEC.tasks:
        torch.testing.assert_close(out[task].cpu(), expected[task], atol=1e-4, rtol=1e-4)


def test_every_long_kind_is_in_the_config_union() -> None:
    classes = {"sim_hard": SIMHard, "sim_soft": SIMSoft, "eta": ETA, "sdim": SDIM, "twin": TWIN}
    for kind, cls in classes.items():
        assert type(build(kind)) is cls


def test_configs_validate() -> None:
    assert SIMHardConfig().k == 50 and SIMSoftConfig().short_len == 50
    assert ETAConfig().n_bits == 64 and SDIMConfig().n_hashes == 16
    bad = [
        {"kind": "sim_hard", "k": 0},
        {"kind": "sim_soft", "n_heads": 0},
        {"kind": "twin", "embed_dim": 4, "n_heads": 3},  # 3 does not divide 8
        {"kind": "eta", "n_bits": 0},
        {"kind": "sdim", "n_hashes": 0},
        {"kind": "sdim", "hash_bits": 0},
        {"kind": "sdim", "k": 5},  # SDIM does not search
        {"kind": "sim_hard", "short_len": -1},
        {"kind": "sim_hard", "n_gap_buckets": 0},
        {"kind": "twin", "search_chunk": 0},
        {"kind": "eta", "n_bit": 8},
    ]
    for raw in bad:
        with pytest.raises(ValidationError):
            ADAPTER.validate_python(raw)
    with pytest.raises(ValidationError):
        TWINConfig().k = 3  # type: ignore[misc]


def test_models_need_a_sequence() -> None:
    spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 1, 0, 1, 2, ("click",))
    with pytest.raises(ValueError, match="sequence"):
        build_rank_model(SIMHardConfig(), spec)


# --------------------------------------------------------------------------- the search


def real_rows(batch: dict[str, Tensor], row: int) -> list[int]:
    return [j for j in range(L) if batch["seq_item"][row, j] > 0]


def test_hard_search_keeps_the_most_recent_behaviours_of_the_candidate_category() -> None:
    model = build("sim_hard", k=2)
    batch = long_batch(n=32)
    picked = model.pick(batch)
    for row in range(32):
        target = int(batch["sparse"][row, 2])
        same = [j for j in real_rows(batch, row) if int(batch["seq_category"][row, j]) == target]
        chosen = sorted(picked.index[row][picked.valid[row]].tolist())
        assert chosen == same[:2], row
        assert torch.equal(picked.codes[row, :, 1][picked.valid[row]], torch.full(
            (len(chosen),), target))  # fmt: skip


def brute_force(kind: str, model: LongSequenceModel, batch: dict[str, Tensor]) -> Tensor:
    """``[B, L]`` search scores computed entry by entry from the definitions."""
    emb, pair = model.embedding, model.pair
    with torch.no_grad():
        q = emb.lookup_fields(batch["sparse"][:, list(pair)], pair).flatten(1)
        codes = torch.stack([batch["seq_item"], batch["seq_category"]], -1)
        x = emb.lookup_fields(codes, pair).flatten(-2)
        out = torch.empty(batch["seq_item"].shape)
        for b in range(out.shape[0]):
            for j in range(L):
                if kind == "sim_soft":
                    out[b, j] = float(q[b] @ x[b, j])
                elif kind == "eta":
                    assert isinstance(model, ETA)
                    r = model.simhash.projection
                    bits_q, bits_x = (q[b] @ r) >= 0, (x[b, j] @ r) >= 0
                    out[b, j] = -float((bits_q != bits_x).sum())
                else:
                    assert isinstance(model, TWIN)
                    att = model.esu
                    qh = att.query(q[b]).view(2, -1)
                    kh = att.key_value(x[b, j])[: att.dim].view(2, -1)
                    bias = model.gaps(batch["seq_gap"][b, j])
                    out[b, j] = float(((qh * kh).sum(-1) / qh.shape[1] ** 0.5 + bias).mean())
    return out


@pytest.mark.parametrize("kind", ["sim_soft", "eta", "twin"])
def test_search_selects_the_brute_force_top_k(kind: str) -> None:
    model = build(kind, k=4)
    batch = long_batch(n=24, seed=3)
    picked = model.pick(batch)
    scores = brute_force(kind, model, batch)
    assert isinstance(model, SIMSoft | ETA | TWIN)
    searched = -model.hamming(batch) if isinstance(model, ETA) else model.relevance(batch)[0]
    torch.testing.assert_close(searched, scores, atol=1e-5, rtol=1e-5)
    for row in range(24):
        real = real_rows(batch, row)
        chosen = picked.index[row][picked.valid[row]].tolist()
        assert len(chosen) == min(4, len(real)) and set(chosen) <= set(real), row
        expected = sorted((float(scores[row, j]) for j in real), reverse=True)[:4]
        got = sorted((float(scores[row, j]) for j in chosen), reverse=True)
        assert got == pytest.approx(expected, abs=1e-5), row  # same scores (ties may swap)


def test_eta_cached_signatures_of_one_user_give_the_inline_output() -> None:
    """A served request: every row one user's sequence; the cached [1, L, m] signatures
    (searched by one product) select and score exactly as the inline search."""
    model = build("eta").eval()
    assert isinstance(model, ETA)
    batch = long_batch()
    with torch.no_grad():
        for row in (0, 1, 2):  # empty, full, partly padded
            one = {k: v[row : row + 1].expand(6, *v.shape[1:]) if k.startswith("seq") else v[:6]
                   for k, v in batch.items()}  # fmt: skip
            (bits,) = model.behaviour_projection(
                batch["seq_item"][row : row + 1], batch["seq_category"][row : row + 1]
            )
            assert bits.shape == (1, L, 16) and bits.dtype == torch.bool
            cached = model(one, (bits,))
            for task, logits in model(one).items():
                torch.testing.assert_close(cached[task], logits)


def test_eta_hamming_distance_is_the_number_of_differing_bits() -> None:
    model = build("eta")
    assert isinstance(model, ETA)
    batch = long_batch(n=6)
    distance = model.hamming(batch)
    torch.testing.assert_close(distance, -brute_force("eta", model, batch))
    same = dict(batch)  # a behaviour equal to the candidate is at distance 0
    same["seq_item"] = batch["seq_item"].clone()
    same["seq_category"] = batch["seq_category"].clone()
    same["seq_item"][:, 0], same["seq_category"][:, 0] = (
        batch["sparse"][:, 1],
        batch["sparse"][:, 2],
    )
    assert torch.equal(model.hamming(same)[:, 0], torch.zeros(6))
    # Equal distances go to the most recent behaviours.
    same["seq_item"][:] = batch["sparse"][:, 1:2]
    same["seq_category"][:] = batch["sparse"][:, 2:3]
    picked = model.pick(same)
    assert sorted(picked.index[1].tolist()) == [0, 1, 2, 3] and picked.valid[1].all()


def test_sdim_pools_colliding_behaviours() -> None:
    model = build("sdim", short_len=0)
    assert isinstance(model, SDIM)
    batch = long_batch(n=5)
    # Every behaviour is the candidate: every round collides everywhere -> x / |x|.
    batch["seq_item"][:] = batch["sparse"][:, 1:2]
    batch["seq_category"][:] = batch["sparse"][:, 2:3]
    picked = model.pick(batch)
    _, query, _, behaviours = model.embed(batch, picked.codes)
    interest = model.long_interest(query, behaviours, picked)
    torch.testing.assert_close(interest, torch.nn.functional.normalize(query, dim=-1))
    # Against the definition on random histories.
    batch = long_batch(n=5, seed=9)
    picked = model.pick(batch)
    _, query, _, behaviours = model.embed(batch, picked.codes)
    bits_q, bits_x = model.simhash(query), model.simhash(behaviours)  # [B, 8], [B, L, 8]
    for b in range(5):
        rounds = []
        for r in range(4):
            cols = slice(2 * r, 2 * r + 2)
            same = (bits_x[b, :, cols] == bits_q[b, cols]).all(-1)
            hit = same & picked.valid[b]
            total = behaviours[b][hit].sum(0)
            rounds.append(total / total.norm() if hit.any() else total)
        expected = torch.stack(rounds).mean(0)
        torch.testing.assert_close(model.long_interest(query, behaviours, picked)[b], expected)


def test_twin_cached_projections_give_the_inline_output() -> None:
    model = build("twin").eval()
    assert isinstance(model, TWIN)
    batch = long_batch()
    with torch.no_grad():
        cache = model.behaviour_projection(batch["seq_item"], batch["seq_category"])
        inline, cached = model(batch), model(batch, cache)
    for task in SPEC.tasks:
        torch.testing.assert_close(cached[task], inline[task])
    # One user's cache, computed once, serves all of that user's candidates.
    user = {k: v[1:2].expand(6, *v.shape[1:]) for k, v in batch.items() if k.startswith("seq")}
    user = {**{k: v[:6] for k, v in batch.items()}, **user}
    with torch.no_grad():
        keys, values = model.behaviour_projection(
            batch["seq_item"][1:2], batch["seq_category"][1:2]
        )
        once = model(user, (keys.expand(6, -1, -1), values.expand(6, -1, -1)))
        for task, logits in model(user).items():
            torch.testing.assert_close(once[task], logits)
        # The same projections unexpanded ([1, L, 2E]): the one-user path, same logits, for
        # an empty, a full and a partly padded user.
        for row in (0, 1, 2):
            one = {k: v[row : row + 1].expand(6, *v.shape[1:]) for k, v in batch.items()
                   if k.startswith("seq")}  # fmt: skip
            one = {**user, **one}
            projection = model.behaviour_projection(
                batch["seq_item"][row : row + 1], batch["seq_category"][row : row + 1]
            )
            shared = model(one, projection)
            for task, logits in model(one).items():
                torch.testing.assert_close(shared[task], logits)
    # Gradients still reach the parameters through the inline path.
    model.train()
    sum(v.sum() for v in model(batch).values()).backward()
    assert model.esu.key_value.weight.grad is not None


# --------------------------------------------------------------------------- modules


def test_select_top_k_never_prefers_padding_and_caps_k() -> None:
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0], [1.0, 9.0, 9.0, 0.0]])
    keep = torch.tensor([[False, False, True, True], [True, False, False, False]])
    index, valid = select_top_k(scores, keep, 3)
    assert index.shape == (2, 3)
    assert sorted(index[0][valid[0]].tolist()) == [2, 3] and valid[0].sum() == 2
    assert index[1][valid[1]].tolist() == [0] and valid[1].sum() == 1
    index, valid = select_top_k(scores, keep, 10)
    assert index.shape == (2, 4)


def test_chunked_equals_one_pass() -> None:
    x = torch.randn(3, 11, 2, requires_grad=True)
    out = chunked(lambda s: x[:, s] * 2, 11, 4)
    torch.testing.assert_close(out, x.detach() * 2)
    assert not out.requires_grad


def test_gap_buckets_are_log_spaced_and_monotone() -> None:
    gaps = GapBuckets(32, 4)
    seconds = torch.tensor([0.0, 1.0, 60.0, 3600.0, 86_400.0, 3e7, 1e12])
    buckets = gaps.bucket(torch.log1p(seconds))
    assert buckets.tolist() == sorted(buckets.tolist()) and buckets[0] == 0 and buckets[-1] == 31
    assert len(set(buckets.tolist())) == len(buckets)
    assert GapBuckets(1, 4).bucket(torch.tensor([0.0, 19.0])).tolist() == [0, 0]


def test_simhash_agreement_estimates_the_angle() -> None:
    torch.manual_seed(0)
    h = SimHash(16, 4096)
    a, b = torch.randn(16), torch.randn(16)
    angle = torch.arccos(torch.nn.functional.cosine_similarity(a, b, dim=0))
    assert abs(int(hamming(h(a), h(b))) / 4096 - float(angle) / torch.pi) < 0.05
    bits = h(torch.randn(5, 16))
    rounds = collisions(bits, bits[:1], 4)
    assert rounds.shape == (5, 1024) and rounds[0].all()
    expected = (bits.view(5, 1024, 4) == bits[:1].view(1, 1024, 4)).all(-1)
    assert torch.equal(rounds, expected)


def test_multi_head_attention_equals_a_loop_over_heads() -> None:
    torch.manual_seed(0)
    att = MultiHeadTargetAttention(8, 2)
    q, x = torch.randn(3, 8), torch.randn(3, 5, 8)
    valid = torch.tensor([[True] * 5, [True, False, True, False, False], [False] * 5])
    bias = torch.randn(3, 2, 5)
    out = att(q, x, valid, bias)
    keys, values = att.project(x)
    qp = att.query(q)
    for b in range(3):
        if not valid[b].any():
            assert torch.equal(out[b], torch.zeros(8))
            continue
        heads = []
        for h in range(2):
            cols = slice(4 * h, 4 * h + 4)
            logits = keys[b, valid[b], cols] @ qp[b, cols] / 2 + bias[b, h, valid[b]]
            heads.append(torch.softmax(logits, 0) @ values[b, valid[b], cols])
        torch.testing.assert_close(out[b], att.out(torch.cat(heads)))
    with pytest.raises(ValueError):
        MultiHeadTargetAttention(8, 3)


# --------------------------------------------------------------------------- long range


def old_category_task(n: int, seed: int, length: int = 200) -> dict[str, Tensor]:
    """label = the candidate's category occurs among the OLD behaviours (positions >= 50).

    The 50 most recent behaviours are of categories 1..10, the older ones of 5 of the
    categories 11..40 per user; the candidate's category (11..40) is one of the user's old ones
    half of the time. Items are ``category - 1 + 40 j``. Nothing in the last 50 behaviours
    carries signal, so a model reading only them scores AUC 0.5.
    """
    rng = np.random.default_rng(seed)
    cat = np.empty((n, length), dtype=np.int64)
    cat[:, :50] = rng.integers(1, 11, (n, 50))
    owned = np.argsort(rng.random((n, 30)), axis=1)[:, :5] + 11  # [n, 5]
    cat[:, 50:] = np.take_along_axis(owned, rng.integers(0, 5, (n, length - 50)), axis=1)
    label = rng.random(n) < 0.5
    other = np.array([rng.choice(np.setdiff1d(np.arange(11, 41), o)) for o in owned])
    target = np.where(label, owned[np.arange(n), rng.integers(0, 5, n)], other)
    item = lambda c: c - 1 + 40 * rng.integers(0, 25, c.shape)  # noqa: E731
    return {
        "sparse": torch.from_numpy(np.stack([item(target), target], axis=1)),
        "dense": torch.zeros(n, 0),
        "seq_item": torch.from_numpy(item(cat)),
        "seq_category": torch.from_numpy(cat),
        "seq_gap": torch.from_numpy(np.log1p(np.arange(length) * 3600.0)).float().expand(n, -1),
        "label_click": torch.from_numpy(label.astype(np.float32)),
    }


def fit_auc(config: RankModelConfig, length: int, data: dict, test: dict) -> float:
    spec = FeatureSpec(("item", "category"), (1000, 41), 0, length, 0, 1, ("click",))
    cut = {k: v[:, :length] if k.startswith("seq") else v for k, v in data.items()}
    model = build_rank_model(config, spec)
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=spec.tasks))
    n = len(data["sparse"])

    def batches(epoch: int):
        order = torch.from_numpy(np.random.default_rng(epoch).permutation(n))
        for start in range(0, n, 256):
            yield {k: v[order[start : start + 256]] for k, v in cut.items()}

    train(model, loss, batches, TrainLoopConfig(epochs=EPOCHS, lr=1e-2))
    with torch.no_grad():
        logits = model.eval()({k: v[:, :length] if k.startswith("seq") else v
                               for k, v in test.items()})["click"]  # fmt: skip
    return float(roc_auc_score(test["label_click"].numpy(), logits.numpy()))


@pytest.mark.slow
def test_sim_hard_sees_old_behaviours_that_din_on_the_last_50_cannot() -> None:
    data, test = old_category_task(3000, seed=1), old_category_task(1000, seed=2)
    small = {"embed_dim": 8, "deep": MLPConfig(hidden=(32,))}
    din = fit_auc(DINConfig(**small, attention=MLPConfig(hidden=(16,))), 50, data, test)
    sim = fit_auc(SIMHardConfig(**small, k=16, short_len=0), 200, data, test)
    assert din < 0.6, din
    assert sim > 0.9, sim

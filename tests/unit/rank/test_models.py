"""Ranking models and their modules: shapes, equivalences, masking, gates, ESMM bounds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import Tensor, nn

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models import (
    DIN,
    ESMM,
    PLE,
    DeepFMConfig,
    DINConfig,
    ESMMConfig,
    FlatInput,
    MMoE,
    MMoEConfig,
    PLEConfig,
    RankModelConfig,
    build_rank_model,
    product_logit,
)
from funnelrec.rank.models.config import MLPConfig
from funnelrec.rank.models.dcn import CrossLayer
from funnelrec.rank.models.deepfm import fm_second_order
from funnelrec.rank.modules import (
    MLP,
    ExpertBank,
    FieldEmbedding,
    TargetAttention,
    gather_rows,
    masked_softmax,
    mix,
)

SPEC = FeatureSpec(
    ("user", "item", "category", "context"), (11, 23, 7, 4), 3, 6, 1, 2, ("click", "buy", "like")
)
SMALL = MLPConfig(hidden=(16, 8))
KINDS = ("deepfm", "dcn_v2", "din", "shared_bottom", "mmoe", "ple", "esmm", "star")
ADAPTER: TypeAdapter[RankModelConfig] = TypeAdapter(RankModelConfig)


def random_batch(spec: FeatureSpec, n: int = 32, seed: int = 0) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    sparse = torch.stack(
        [torch.randint(0, c, (n,), generator=g) for c in spec.sparse_cardinalities], dim=1
    )
    cards = spec.sparse_cardinalities
    seq_item = torch.randint(0, cards[spec.item_field], (n, spec.seq_len), generator=g)
    seq_item[: n // 4] = 0  # some empty histories
    seq_category = torch.randint(1, cards[spec.category_field], (n, spec.seq_len), generator=g)
    batch = {
        "sparse": sparse,
        "dense": torch.randn(n, spec.n_dense, generator=g),
        "seq_item": seq_item,
        "seq_category": seq_category * (seq_item > 0),
        "seq_gap": torch.rand(n, spec.seq_len, generator=g),
    }
    for task in spec.tasks:
        batch[f"label_{task}"] = (torch.rand(n, generator=g) < 0.3).float()
    return batch


def small_config(kind: str, **extra: object) -> RankModelConfig:
    layers = {
        "deepfm": {"deep": SMALL},
        "dcn_v2": {"deep": SMALL},
        "din": {"deep": SMALL, "attention": MLPConfig(hidden=(8,))},
        "shared_bottom": {"bottom": SMALL, "tower": MLPConfig(hidden=(4,))},
        "mmoe": {"expert": SMALL, "n_experts": 3},
        "ple": {"expert": SMALL, "n_specific": 1, "n_shared": 2},
        "esmm": {"tower": SMALL},
        "star": {"star": SMALL, "tower": MLPConfig(hidden=(4,))},
    }[kind]
    return ADAPTER.validate_python({"kind": kind, "embed_dim": 4, **layers, **extra})


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("kind", KINDS)
def test_every_model_returns_one_logit_per_task(kind: str) -> None:
    model = build_rank_model(small_config(kind), SPEC)
    batch = random_batch(SPEC)
    out = model(batch)
    assert list(out) == list(SPEC.tasks)
    for logits in out.values():
        assert logits.shape == (32,)
        assert logits.dtype == torch.float32
        assert torch.isfinite(logits).all()
    sum(v.sum() for v in out.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("kind", KINDS)
def test_rows_are_scored_independently_in_eval_mode(kind: str) -> None:
    """A sample's logits do not depend on the rest of the batch (catches transposes that mix
    the batch and expert/task axes)."""
    model = build_rank_model(small_config(kind), SPEC).eval()
    batch = random_batch(SPEC, n=9)
    with torch.no_grad():
        full = model(batch)
        for row in (0, 4, 8):
            alone = model({k: v[row : row + 1] for k, v in batch.items()})
            for task in SPEC.tasks:
                torch.testing.assert_close(alone[task][0], full[task][row])


@pytest.mark.parametrize("kind", KINDS)
def test_models_with_pooling_batch_norm_dropout_and_no_dense(kind: str) -> None:
    spec = FeatureSpec(("u", "i", "c"), (5, 9, 4), 0, 3, 1, 2, ("click", "buy"))
    layers = MLPConfig(hidden=(8,), batch_norm=True, dropout=0.1)
    extra: dict[str, object] = {} if kind == "din" else {"sequence_pooling": "mean"}
    config = small_config(kind, **extra)
    field = {"deepfm": "deep", "dcn_v2": "deep", "din": "deep", "shared_bottom": "bottom",
             "mmoe": "expert", "ple": "expert", "esmm": "tower", "star": "tower"}[kind]  # fmt: skip
    config = config.model_copy(update={field: layers})
    model = build_rank_model(config, spec)
    batch = random_batch(spec, n=8)
    out = model.train()(batch)
    assert all(v.shape == (8,) and torch.isfinite(v).all() for v in out.values())
    out = model.eval()(batch)
    assert all(v.shape == (8,) for v in out.values())


def test_configs_forbid_unknown_fields_and_are_frozen() -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"kind": "mmoe", "n_expert": 4})
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"kind": "transformer"})
    with pytest.raises(ValidationError):
        MLPConfig(hiden=(4,))  # type: ignore[call-arg]
    config = MMoEConfig()
    with pytest.raises(ValidationError):
        config.n_experts = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        PLEConfig(n_specific=0, n_shared=0)


def test_build_rejects_non_configs() -> None:
    with pytest.raises(TypeError):
        build_rank_model(MLPConfig(), SPEC)  # type: ignore[arg-type]


def test_seeded_construction_is_reproducible_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_rank_model(small_config("mmoe", seed=7), SPEC)
    after = torch.rand(3)
    b = build_rank_model(small_config("mmoe", seed=7), SPEC)
    c = build_rank_model(small_config("mmoe", seed=8), SPEC)
    torch.testing.assert_close(after, expected)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)
    assert not torch.equal(a.input.embedding.table.weight, c.input.embedding.table.weight)


# --------------------------------------------------------------------------- modules


def test_field_embedding_is_one_table_with_field_offsets() -> None:
    emb = FieldEmbedding((3, 5, 2), dim=4)
    codes = torch.tensor([[0, 4, 1], [2, 0, 0]])
    out = emb(codes)
    weight = emb.table.weight
    assert out.shape == (2, 3, 4)
    torch.testing.assert_close(out[0, 1], weight[3 + 4])
    torch.testing.assert_close(out[0, 2], weight[8 + 1])
    torch.testing.assert_close(emb.lookup(1, torch.tensor([[4]]))[0, 0], weight[3 + 4])
    out.sum().backward()
    used = {0, 2, 7, 3, 9, 8}
    touched = set(torch.nonzero(weight.grad.abs().sum(1)).flatten().tolist())
    assert touched == used


def test_field_embedding_rejects_codes_outside_their_field() -> None:
    emb = FieldEmbedding((3, 5), dim=2)
    with pytest.raises(IndexError, match="outside"):
        emb(torch.tensor([[3, 0]]))  # would read field 1's first row
    with pytest.raises(IndexError):
        emb(torch.tensor([[0, -1]]))
    with pytest.raises(IndexError):
        emb.lookup(0, torch.tensor([3]))
    with pytest.raises(IndexError):
        emb.lookup_fields(torch.tensor([[2, 5]]), (0, 1))


def test_forward_with_equals_separate_lookups() -> None:
    emb = FieldEmbedding((3, 5, 2), dim=4)
    codes = torch.tensor([[0, 4, 1], [2, 0, 0]])
    extra = torch.tensor([[[4, 1], [0, 0], [3, 1]]] * 2)  # [2, 3, K=2] of fields (1, 2)
    fields, rows = emb.forward_with(codes, extra, (1, 2))
    torch.testing.assert_close(fields, emb(codes))
    torch.testing.assert_close(rows, emb.lookup_fields(extra, (1, 2)))
    (fields.sum() + 2 * rows.sum()).backward()
    together = emb.table.weight.grad.clone()
    emb.table.weight.grad = None
    (emb(codes).sum() + 2 * emb.lookup_fields(extra, (1, 2)).sum()).backward()
    torch.testing.assert_close(together, emb.table.weight.grad)


def test_gather_rows_gradient_equals_nn_embedding() -> None:
    weight = torch.randn(13, 3, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 13, (6, 9))  # many duplicates
    grad = torch.randn(6, 9, 3, dtype=torch.float64)
    gather_rows(weight, index).backward(grad)
    ours = weight.grad.clone()
    weight.grad = None
    nn.functional.embedding(index, weight).backward(grad)
    torch.testing.assert_close(ours, weight.grad)
    assert torch.autograd.gradcheck(lambda w: gather_rows(w, index), (weight,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gather_rows_takes_the_native_embedding_backward_on_cuda() -> None:
    weight = torch.randn(13, 3, dtype=torch.float64)
    index = torch.randint(0, 13, (64, 50))  # behaviour sequences: duplicate-heavy
    grad = torch.randn(64, 50, 3, dtype=torch.float64)
    grads = []
    for device in ("cpu", "cuda"):
        w = weight.to(device).requires_grad_()
        out = gather_rows(w, index.to(device))
        assert ("Embedding" in type(out.grad_fn).__name__) == (device == "cuda")
        out.backward(grad.to(device))
        grads.append(w.grad.cpu())
    torch.testing.assert_close(grads[0], grads[1])


def test_lookup_fields_gathers_several_fields_at_once() -> None:
    emb = FieldEmbedding((3, 5, 2), dim=4)
    codes = torch.tensor([[[4, 1], [0, 1]]])  # [1, 2, K=2]: codes of fields (1, 2)
    out = emb.lookup_fields(codes, (1, 2))
    assert out.shape == (1, 2, 2, 4)
    torch.testing.assert_close(out[0, 0, 0], emb.lookup(1, torch.tensor(4)))
    torch.testing.assert_close(out[0, 1, 1], emb.lookup(2, torch.tensor(1)))


def test_in_place_activations_keep_gradients_exact() -> None:
    config = MLPConfig(hidden=(8, 8), activation="relu", batch_norm=True)
    mlp = MLP(5, config)
    relus = [m for m in mlp.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(m.inplace for m in relus)
    x = torch.randn(16, 5, requires_grad=True)
    mlp(x).square().sum().backward()
    fast = x.grad.clone()
    for m in relus:
        m.inplace = False
    x.grad = None
    mlp(x).square().sum().backward()
    torch.testing.assert_close(fast, x.grad)


def test_mlp_initialises_for_its_activation() -> None:
    mlp = MLP(512, MLPConfig(hidden=(512,), activation="relu"))
    layer = mlp.layers[0]
    assert isinstance(layer, nn.Linear)
    assert 0.05 < float(layer.weight.detach().std()) < 0.08  # He: sqrt(2 / 512) = 0.0625
    assert float(layer.bias.detach().abs().sum()) == 0.0
    assert MLP(7, MLPConfig(hidden=()))(torch.ones(2, 7)).shape == (2, 7)


@pytest.mark.parametrize("shared_input", [True, False])
def test_expert_bank_equals_a_loop_over_members(shared_input: bool) -> None:
    bank = ExpertBank(6, 3, MLPConfig(hidden=(5, 4), activation="tanh"), out_dim=2).double()
    x = torch.randn(7, 6) if shared_input else torch.randn(3, 7, 6)
    x = x.double().requires_grad_()
    out = bank(x)
    assert out.shape == (3, 7, 2)
    layers = [m for m in bank.layers if hasattr(m, "weight")]
    loop = []
    for n in range(3):
        h = x if shared_input else x[n]
        for i, layer in enumerate(layers):
            h = h @ layer.weight[n] + layer.bias[n]
            if i < len(layers) - 1:
                h = torch.tanh(h)
        loop.append(h)
    expected = torch.stack(loop)
    torch.testing.assert_close(out, expected)
    # gradients (the shared-input layer has its own backward) match autograd's loop
    grad = torch.randn_like(out)
    params = [x, *bank.parameters()]
    ours = torch.autograd.grad(out, params, grad)
    theirs = torch.autograd.grad(expected, params, grad)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError):
        bank(torch.randn(2, 7, 6).double())


def test_expert_bank_batch_norm_and_dropout_run() -> None:
    bank = ExpertBank(6, 3, MLPConfig(hidden=(5,), batch_norm=True, dropout=0.2), out_dim=1)
    out = bank(torch.randn(9, 6))
    assert out.shape == (3, 9, 1)
    out.sum().backward()
    assert all(p.grad is not None for p in bank.parameters())


def test_mix_and_masked_softmax() -> None:
    experts = torch.randn(4, 5, 3)  # [N, B, H]
    logits = torch.randn(2, 5, 4)  # [G, B, N]
    allowed = torch.tensor([[True, False, True, False], [True, True, True, True]])
    weights = masked_softmax(logits, allowed)
    assert torch.all(weights[0, :, [1, 3]] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5))
    expected = torch.einsum("gbn,nbh->gbh", weights, experts)
    torch.testing.assert_close(mix(weights, experts), expected)


def naive_din_unit(att: TargetAttention, q: Tensor, k: Tensor, mask: Tensor) -> Tensor:
    qe = q.unsqueeze(1).expand_as(k)
    h = att.post(att.first(torch.cat([qe, k, qe - k, qe * k], dim=-1)))
    b, length, _ = k.shape
    h = att.rest(h.reshape(b * length, -1))
    return att.out(h).view(b, length) * mask


@pytest.mark.parametrize("batch_norm", [False, True])
def test_target_attention_factorisation_equals_the_concat_unit(batch_norm: bool) -> None:
    att = TargetAttention(6, MLPConfig(hidden=(8, 4), batch_norm=batch_norm))
    q, k = torch.randn(5, 6), torch.randn(5, 7, 6)
    mask = torch.rand(5, 7) < 0.6
    torch.testing.assert_close(att.scores(q, k, mask), naive_din_unit(att, q, k, mask))


@pytest.mark.parametrize("normalise", ["none", "softmax"])
def test_target_attention_ignores_padding(normalise: str) -> None:
    att = TargetAttention(4, MLPConfig(hidden=(8,)), normalise)  # type: ignore[arg-type]
    q, k = torch.randn(3, 4), torch.randn(3, 5, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    weights = att.scores(q, k, mask)
    assert torch.all(weights[~mask] == 0)
    if normalise == "softmax":
        torch.testing.assert_close(weights[:2].sum(1), torch.ones(2))
    pooled = att(q, k, mask)
    torch.testing.assert_close(pooled[2], torch.zeros(4))
    changed = k.detach().clone()
    changed[~mask] = 100.0
    torch.testing.assert_close(att(q, changed, mask), pooled)
    pooled.sum().backward()
    assert torch.isfinite(k.grad).all()
    assert torch.all(k.grad[~mask] == 0)


def test_fm_second_order_equals_pairwise_dot_products() -> None:
    v = torch.randn(4, 5, 3)
    brute = sum((v[:, i] * v[:, j]).sum(-1) for i, j in itertools.combinations(range(5), 2))
    torch.testing.assert_close(fm_second_order(v), brute)


@pytest.mark.parametrize("low_rank", [None, 2])
def test_cross_layer_formula(low_rank: int | None) -> None:
    layer = CrossLayer(5, low_rank)
    x0, x = torch.randn(3, 5), torch.randn(3, 5)
    if low_rank is None:
        w = layer.up.weight
    else:
        assert layer.down is not None
        w = layer.up.weight @ layer.down.weight
    torch.testing.assert_close(layer(x0, x), x0 * (x @ w.t() + layer.up.bias) + x)


def test_flat_input_mean_pools_the_real_behaviours() -> None:
    layer = FlatInput(SPEC, 4, sequence_pooling="mean")
    batch = random_batch(SPEC, n=8)
    batch["seq_item"][0] = torch.tensor([3, 5, 0, 0, 0, 0])
    batch["seq_category"][0] = torch.tensor([1, 2, 0, 0, 0, 0])
    batch["seq_item"][1] = 0
    fields, flat = layer(batch)
    emb = layer.embedding
    n_fields = SPEC.n_sparse * 4
    torch.testing.assert_close(flat[:, :n_fields], fields.flatten(1))
    item = (emb.lookup(1, torch.tensor(3)) + emb.lookup(1, torch.tensor(5))) / 2
    category = (emb.lookup(2, torch.tensor(1)) + emb.lookup(2, torch.tensor(2))) / 2
    torch.testing.assert_close(flat[0, n_fields : n_fields + 8], torch.cat([item, category]))
    torch.testing.assert_close(flat[1, n_fields : n_fields + 8], torch.zeros(8))
    torch.testing.assert_close(flat[:, n_fields + 8 :], batch["dense"])


# --------------------------------------------------------------------------- DIN


def test_din_shares_item_rows_between_candidate_and_behaviours() -> None:
    model = DIN(DINConfig(embed_dim=4, deep=SMALL), SPEC)
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    assert embeddings == [model.embedding.table]
    batch = random_batch(SPEC, n=4)
    batch["sparse"][:, SPEC.item_field] = 0  # candidates use the "unknown" row only
    batch["seq_item"][:] = 5
    model(batch)["click"].sum().backward()
    grad = model.embedding.table.weight.grad
    assert grad is not None
    offset = int(model.embedding.offsets[SPEC.item_field])
    assert grad[offset + 5].abs().sum() > 0


def test_din_ignores_padded_positions() -> None:
    model = DIN(DINConfig(embed_dim=4, deep=SMALL), SPEC).eval()
    batch = random_batch(SPEC, n=16)
    batch["seq_item"][:, 3:] = 0
    before = model(batch)
    batch["seq_category"][:, 3:] = 5
    after = model(batch)
    for task in SPEC.tasks:
        torch.testing.assert_close(before[task], after[task])


# --------------------------------------------------------------------------- gates


def test_mmoe_gate_utilisation() -> None:
    model = MMoE(MMoEConfig(embed_dim=4, n_experts=5, expert=SMALL), SPEC).eval()
    batch = random_batch(SPEC, n=40)
    util = model.gate_utilisation(batch)
    assert list(util) == list(SPEC.tasks)
    assert len(model.expert_names) == 5
    for value in util.values():
        assert isinstance(value, np.ndarray)
        assert value.shape == (5,)
        assert value.sum() == pytest.approx(1.0)
    halves = [{k: v[:10] for k, v in batch.items()}, {k: v[10:] for k, v in batch.items()}]
    over = model.gate_utilisation_over(halves)
    for task in SPEC.tasks:
        np.testing.assert_allclose(over[task], util[task], rtol=1e-10)


@pytest.mark.parametrize("levels", [1, 3])
def test_ple_gates_see_only_own_and_shared_experts(levels: int) -> None:
    config = PLEConfig(embed_dim=4, levels=levels, n_specific=2, n_shared=1, expert=SMALL)
    model = PLE(config, SPEC).eval()
    assert model.expert_names == (
        "click/0", "click/1", "buy/0", "buy/1", "like/0", "like/1", "shared/0"
    )  # fmt: skip
    batch = random_batch(SPEC)
    for level in range(levels):
        util = model.gate_utilisation(batch) if level == levels - 1 else None
        weights = model.gate_weights(batch, level=level)
        assert weights.shape == (3, 32, 7)
        for t in range(3):
            own = [2 * t, 2 * t + 1, 6]
            others = [i for i in range(7) if i not in own]
            assert torch.all(weights[t][:, others] == 0)
            torch.testing.assert_close(weights[t].sum(1), torch.ones(32))
        if util is not None:
            assert util["buy"][[0, 1, 4, 5]].sum() == 0
            assert util["buy"].sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------- ESMM


def test_product_logit_is_exact() -> None:
    a = torch.linspace(-40, 40, 81, dtype=torch.float64)
    a, b = torch.meshgrid(a, a.flip(0), indexing="ij")
    p = torch.sigmoid(product_logit(a, b))
    torch.testing.assert_close(p, torch.sigmoid(a) * torch.sigmoid(b), rtol=1e-12, atol=0)
    a32, b32 = a.float(), b.float()
    p32 = torch.sigmoid(product_logit(a32, b32)).double()
    exact = torch.sigmoid(a) * torch.sigmoid(b)
    torch.testing.assert_close(p32, exact, rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("scale", [1.0, 1e2, 1e4])
def test_esmm_ctcvr_never_exceeds_ctr(scale: float) -> None:
    model = ESMM(ESMMConfig(embed_dim=4, tower=SMALL, seed=3), SPEC)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(scale)
    batch = random_batch(SPEC, n=4096, seed=5)
    batch["dense"] = batch["dense"] * scale
    out = model(batch)
    towers = model.tower_logits(batch)
    if scale > 1:
        assert towers.abs().max() > 1e3  # the extremes are really reached
    ctr = torch.sigmoid(out["click"])
    for task in ("buy", "like"):
        assert torch.isfinite(out[task]).all()
        assert torch.all(out[task] <= out["click"])
        assert torch.all(torch.sigmoid(out[task]) <= ctr)
    sum(v.sum() for v in out.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_esmm_probabilities_are_the_product_of_the_towers() -> None:
    model = ESMM(ESMMConfig(embed_dim=4, tower=SMALL), SPEC).double()
    batch = random_batch(SPEC, n=64)
    batch["dense"] = batch["dense"].double()
    out = model(batch)
    cond = model.conditional_logits(batch)
    assert list(cond) == ["buy", "like"]
    p_ctr = torch.sigmoid(out["click"])
    for task in ("buy", "like"):
        expected = p_ctr * torch.sigmoid(cond[task])
        torch.testing.assert_close(torch.sigmoid(out[task]), expected, rtol=1e-12, atol=0)


def test_esmm_needs_a_post_click_task() -> None:
    spec = FeatureSpec(("u", "i", "c"), (5, 9, 4), 1, 3, 1, 2, ("click",))
    with pytest.raises(ValueError, match="post-click"):
        ESMM(ESMMConfig(), spec)


def test_deepfm_default_config_builds() -> None:
    model = build_rank_model(DeepFMConfig(), SPEC)
    assert set(model(random_batch(SPEC, n=4))) == set(SPEC.tasks)

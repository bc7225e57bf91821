"""The SASRec channel end to end on a log whose next item is deterministic.

Users walk a cycle of items (``i -> i + 1 mod N``) from random starting points: the next item
depends only on the last one, which a sequential model must learn, and retrieval must put it
first. Also: save/reload, seen items, empty histories, config errors, reproducibility.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pydantic
import pytest
import torch

from funnelrec.data.dataset import Dataset
from funnelrec.errors import MissingInputError
from funnelrec.index import AutoIndexConfig, ExactIndexConfig, IVFIndexConfig
from funnelrec.recall.base import Queries
from funnelrec.recall.sasrec import SASRec, SASRecConfig

N_ITEMS, N_USERS, WALK = 20, 60, 12


def cycle_data(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    start = rng.integers(0, N_ITEMS, N_USERS)
    steps = np.arange(WALK)
    inter = pl.DataFrame(
        {
            "user_id": np.repeat(np.arange(N_USERS), WALK),
            "item_id": ((start[:, None] + steps[None, :]) % N_ITEMS).ravel(),
            "timestamp": np.tile(1000 + steps, N_USERS),
        }
    )
    return Dataset.from_frame(inter)


def config(**overrides: object) -> SASRecConfig:
    base: dict[str, object] = {
        "k": 5,
        "device": "cpu",
        "dim": 16,
        "ffn_dim": 32,
        "max_len": 8,
        "batch_size": 32,
        "n_uniform_negatives": 8,
        "valid_users": 0,
        "index": ExactIndexConfig(),
        "train": {"epochs": 40, "lr": 0.01},
        "fit_threads": 1,  # a tiny model: threads only spin, badly so on a busy machine
    }
    base.update(overrides)
    return SASRecConfig.model_validate(base)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return cycle_data()


@pytest.fixture(scope="module")
def fitted(data: Dataset) -> SASRec:
    return SASRec(config()).fit(data)


def walk_queries(prefixes: list[list[int]]) -> Queries:
    """Queries of unknown users whose histories are the given item walks."""
    lengths = np.array([len(p) for p in prefixes])
    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([i for p in prefixes for i in p], dtype=np.int32)
    b = len(prefixes)
    return Queries(
        np.arange(b, dtype=np.int64),
        np.full(b, -1, dtype=np.int32),
        np.full(b, 10**6, dtype=np.int64),
        ptr,
        items,
        np.arange(items.shape[0], dtype=np.int64),
    )


def test_learns_the_next_item_of_a_cycle(fitted: SASRec, data: Dataset) -> None:
    rng = np.random.default_rng(1)
    starts = rng.integers(0, N_ITEMS, 40)
    walks = [[(int(s) + t) % N_ITEMS for t in range(rng.integers(2, 8))] for s in starts]
    idx = data.item_vocab.encode(pl.Series([i for w in walks for i in w]))
    offsets = np.cumsum([0] + [len(w) for w in walks])
    prefixes = [idx[offsets[i] : offsets[i + 1]].tolist() for i in range(len(walks))]
    nexts = data.item_vocab.encode(pl.Series([(w[-1] + 1) % N_ITEMS for w in walks]))
    result = fitted.retrieve(walk_queries(prefixes))
    hit_at_1 = float(np.mean(result.item_idx[:, 0] == nexts))
    assert hit_at_1 >= 0.9


def test_state_round_trip_retrieves_identically(fitted: SASRec, data: Dataset) -> None:
    queries = Queries.from_history(
        np.arange(N_USERS),
        np.arange(N_USERS, dtype=np.int32),
        np.full(N_USERS, data.as_of),
        data.positives,
    )
    restored = SASRec.from_state(fitted.config, fitted.state())
    a, b = fitted.retrieve(queries), restored.retrieve(queries)
    assert np.array_equal(a.item_idx, b.item_idx)
    assert np.array_equal(a.score, b.score)
    assert np.array_equal(fitted.similarity_vectors(), restored.similarity_vectors())
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in fitted.state().values())


def test_an_ivf_index_is_calibrated_on_the_training_users_and_keeps_it(data: Dataset) -> None:
    ivf = IVFIndexConfig(nlist=4, nprobe=1, min_train_points=1, target_recall=1.0)
    index = AutoIndexConfig(exact_up_to=N_ITEMS - 1, ann=ivf)  # the catalogue is above it
    model = SASRec(config(index=index, train={"epochs": 5, "lr": 0.01})).fit(data)
    assert model.stats["index_recall_vs_exact"] == 1.0
    assert model.index.nprobe == model.stats["index_nprobe"]
    restored = SASRec.from_state(model.config, model.state())
    assert restored.index.nprobe == model.index.nprobe


def test_seen_items_are_never_returned(fitted: SASRec) -> None:
    walk = [3, 4, 5, 6, 7, 8]
    result = fitted.retrieve(walk_queries([walk]), k=N_ITEMS)
    returned = result.item_idx[0][result.item_idx[0] >= 0]
    assert not set(returned.tolist()) & set(walk)
    assert returned.shape[0] == N_ITEMS - len(walk)
    keep = SASRec.from_state(config(exclude_seen=False), fitted.state())
    assert keep.retrieve(walk_queries([walk]), k=N_ITEMS).item_idx[0].min() >= 0


def test_empty_or_unknown_histories_get_no_candidates(fitted: SASRec) -> None:
    queries = walk_queries([[], [N_ITEMS + 3, -1], [2]])
    result = fitted.retrieve(queries)
    assert (result.item_idx[:2] == -1).all() and np.isneginf(result.score[:2]).all()
    assert (result.item_idx[2] >= 0).all()
    assert fitted.retrieve(walk_queries([[], []])).item_idx.shape == (2, 5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("heads", 3, "not divisible by heads"),
        ("dropout", 1.0, "less than 1"),
        ("max_len", 0, "greater than 0"),
        ("valid_users", -1, "greater than or equal to 0"),
        ("kind", "two_tower", "Input should be 'sasrec'"),
        ("max_length", 50, "Extra inputs are not permitted"),
    ],
)
def test_bad_config_values_are_rejected(field: str, value: object, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        SASRecConfig.model_validate({field: value})


def test_fits_reproducibly_with_early_stopping_and_leaves_global_rng_alone(data: Dataset) -> None:
    cfg = config(valid_users=18, train={"epochs": 4, "lr": 0.01}, patience=1)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = SASRec(cfg).fit(data)
    assert torch.equal(torch.get_rng_state(), before)
    b = SASRec(cfg).fit(data)
    assert np.array_equal(a.similarity_vectors(), b.similarity_vectors())
    assert a.stats["valid_users"] == 18 and a.stats["best_epoch"] >= 0
    assert 0.0 <= a.stats["valid_ndcg@10"] <= 1.0


def test_a_log_without_any_item_pair_is_a_missing_input() -> None:
    inter = pl.DataFrame({"user_id": [1, 2], "item_id": [5, 6], "timestamp": [1, 2]})
    with pytest.raises(MissingInputError, match="sasrec"):
        SASRec(config()).fit(Dataset.from_frame(inter))

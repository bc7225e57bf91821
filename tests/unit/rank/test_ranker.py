"""The ranking stage end to end on a small simulated log: samples -> features -> model ->
fusion, with every model family, and persistence."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.split import TemporalSplitConfig, make_split
from funnelrec.features.behaviours import DenseSequences
from funnelrec.features.spec import FeatureSpec, RankFeatures
from funnelrec.metrics.rank import auc, gauc
from funnelrec.pipeline.rank_samples import build_rank_data
from funnelrec.rank import ranker as ranker_module
from funnelrec.rank.batches import BatchTable
from funnelrec.rank.config import RankConfig
from funnelrec.rank.lean_shared import SharedForward
from funnelrec.rank.listwise import QUERY_KEY
from funnelrec.rank.models.mmoe import MMoE
from funnelrec.rank.ranker import Ranker
from funnelrec.train.config import TrainLoopConfig

FLAT_KINDS = ("deepfm", "mmoe", "esmm")  # kinds below that read only sparse + dense inputs


@pytest.fixture(scope="module")
def sim_train() -> Dataset:
    sim = simulate(SimulatorConfig.for_interactions(60_000, seed=3))
    split = make_split(sim.interactions, sim.items, sim.users, TemporalSplitConfig())
    return Dataset.build(
        split.train_interactions, split.train_items, split.train_users, as_of=split.as_of
    )


def _config(model: dict, loss: str = "pointwise") -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "rank": {
                "model": model,
                "samples": {
                    "source": "impressions",
                    "max_train_samples": 12_000,
                    "guard_fraction": 0.0,  # this test measures the ranker alone
                },
                "train": {
                    # Three full epochs: on this small sample the validation loss is noisy,
                    # and stopping after one epoch left ESMM at chance.
                    "loop": TrainLoopConfig(epochs=3, lr=3e-3).model_dump(),
                    "patience": 3,
                    "health": False,
                    "loss": loss,
                },
                "fusion": {"trials": 5},
            }
        }
    )


@pytest.fixture(scope="module")
def rank_data(sim_train: Dataset):
    return build_rank_data(sim_train, _config({"kind": "deepfm"}), np.random.default_rng(0))


def test_impression_samples_stay_inside_the_training_window(sim_train: Dataset, rank_data) -> None:
    info = rank_data.info
    samples = pl.concat([rank_data.train, rank_data.valid])
    assert samples["timestamp"].min() >= info["window_start"]
    # The longest label window (24 h) must end before the cutoff: no truncated labels.
    assert samples["timestamp"].max() <= sim_train.as_of - 86_400
    # Validation queries are the latest ones.
    assert rank_data.valid["timestamp"].min() >= rank_data.train["timestamp"].max() - 1
    assert rank_data.tasks == ("click", "cart", "order")
    assert 0 < info["positive_rate"]["click"] < 0.5


@pytest.mark.parametrize(
    "model",
    [
        {"kind": "deepfm"},
        {"kind": "din"},
        {"kind": "mmoe", "n_experts": 2},
        {"kind": "esmm"},
        {"kind": "lightgbm", "n_estimators": 30},
    ],
    ids=lambda m: m["kind"],
)
def test_ranker_learns_click_and_round_trips(sim_train: Dataset, rank_data, model: dict) -> None:
    config = _config(model).rank
    ranker = Ranker(config, rank_data.tasks).fit(
        sim_train, rank_data.train, rank_data.valid, rank_data.log
    )
    scored = ranker.score(rank_data.valid, rank_data.log)
    assert {"p_click", "p_cart", "p_order", "score"} <= set(scored.columns)
    p = scored["p_click"].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    assert auc(scored["label_click"].to_numpy(), p) > 0.53  # random: 0.50 +- 0.02 here
    if model["kind"] == "esmm":  # pCTCVR = pCTR x pCVR can never exceed pCTR
        assert np.all(scored["p_order"].to_numpy() <= p + 1e-6)
    _assert_round_trip(ranker, scored, rank_data, lean=model["kind"] in FLAT_KINDS)


def _assert_round_trip(ranker: Ranker, scored: pl.DataFrame, rank_data, *, lean: bool) -> None:
    """A ranker restored from its state scores as it did: networks that read only sparse and
    dense inputs through their ONNX export (rank/lean.py), equal to float rounding; eager
    PyTorch (``rank.serve.runtime = "torch"``) to the bit."""
    config = ranker.config
    restored = Ranker.from_state(config, ranker.state())
    assert (restored.lean is not None) == lean
    again = restored.score(rank_data.valid, rank_data.log)
    np.testing.assert_allclose(again["score"], scored["score"], rtol=1e-5, atol=1e-6)
    if isinstance(ranker.network, MMoE):  # one user's request takes the request-shared form
        assert isinstance(restored.lean, SharedForward)
        first = rank_data.valid.row(0, named=True)
        one = pl.col("user_idx") == first["user_idx"]
        request = rank_data.valid.with_row_index("at").filter(
            one & (pl.col("timestamp") == first["timestamp"])
        )
        assert request.height > 1
        served = restored.score(request.drop("at"), rank_data.log)
        expected = scored["score"].to_numpy()[request["at"].to_numpy()]
        np.testing.assert_allclose(served["score"], expected, rtol=1e-5, atol=1e-6)
    serve = config.serve.model_copy(update={"runtime": "torch"})
    restored = Ranker.from_state(config.model_copy(update={"serve": serve}), ranker.state())
    assert restored.lean is None
    again = restored.score(rank_data.valid, rank_data.log)
    assert again["score"].to_list() == scored["score"].to_list()


def test_fusion_is_tuned_on_validation(sim_train: Dataset, rank_data) -> None:
    config = _config({"kind": "lightgbm", "n_estimators": 20}).rank
    ranker = Ranker(config, rank_data.tasks).fit(
        sim_train, rank_data.train, rank_data.valid, rank_data.log
    )
    fusion = ranker.stats["fusion"]
    assert fusion["best"] >= fusion["uniform"]
    assert set(fusion["weights"]) == {"click", "cart", "order"}


def test_recall_source_samples_come_from_candidates(sim_train: Dataset) -> None:
    config = ExperimentConfig.model_validate(
        {
            "recall": {
                "channels": {"popular": {"kind": "popular", "k": 50}},
                "merge": {"k": 50, "quotas": {"popular": 50}},
            },
            "rank": {
                "samples": {"source": "recall", "window_fraction": 0.2},
                "serve": {"score_k": 50},
            },
        }
    )
    data = build_rank_data(sim_train, config, np.random.default_rng(0))
    samples = pl.concat([data.train, data.valid])
    assert data.source == "recall"
    # Every query is asked as of the window start, with the recall's candidates.
    assert samples["timestamp"].n_unique() == 1
    assert samples["timestamp"][0] == data.info["window_start"]
    assert samples.group_by("query_id").len()["len"].max() <= 50
    assert "source_rank" in samples.columns
    # Labels only from the window's events: a positive is an item the user touched later.
    pos = samples.filter(pl.col("label_click") == 1)
    window = sim_train.interactions.filter(
        (pl.col("timestamp") >= data.info["window_start"]) & (pl.col("event") == "click")
    )
    hits = pos.join(window.select("user_idx", "item_idx").unique(), on=["user_idx", "item_idx"])
    assert pos.height > 0 and hits.height == pos.height


def test_repeated_small_requests_read_a_prepared_log(sim_train: Dataset, rank_data) -> None:
    """The second small request against the same log reads its PreparedLog: same scores."""
    config = _config({"kind": "lightgbm", "n_estimators": 10}).rank
    ranker = Ranker(config, rank_data.tasks).fit(
        sim_train, rank_data.train, rank_data.valid, rank_data.log
    )
    first_query = rank_data.valid["query_id"][0]
    request = rank_data.valid.filter(pl.col("query_id") == first_query)
    plain = ranker.score(request, rank_data.log)
    assert ranker._log_seen is not None and ranker._log_seen[1] is None
    again = ranker.score(request, rank_data.log)
    assert ranker._log_seen[1] is not None  # the index now exists
    assert again["score"].to_list() == plain["score"].to_list()
    # A log seen once (e.g. a replay's own concatenation) never gets an index.
    ranker.score(request, rank_data.log.clone())
    assert ranker._log_seen[1] is None


def test_downsampled_negatives_are_corrected_and_saved(sim_train: Dataset) -> None:
    """With max_negatives_per_query the ranker records the keep rate, lowers its
    probabilities by it (raw ones are inflated) and keeps it through state/from_state."""
    config = _config({"kind": "lightgbm", "n_estimators": 20}).model_copy(deep=True)
    samples = config.rank.samples.model_copy(update={"max_negatives_per_query": 2})
    rank = config.rank.model_copy(update={"samples": samples})
    config = config.model_copy(update={"rank": rank})
    data = build_rank_data(sim_train, config, np.random.default_rng(0))
    ranker = Ranker(config.rank, data.tasks).fit(sim_train, data.train, data.valid, data.log)
    assert 0 < ranker.keep_rate < 1
    corrected = ranker.predict(data.valid, data.log)["click"]
    raw = ranker._raw_probs(ranker.features.transform(data.valid, data.log))["click"]  # type: ignore[union-attr]
    assert np.all(corrected <= raw + 1e-12) and corrected.mean() < raw.mean()
    restored = Ranker.from_state(config.rank, ranker.state())
    assert restored.keep_rate == pytest.approx(ranker.keep_rate)


@pytest.mark.parametrize(
    ("model", "loss"),
    [
        ({"kind": "lightgbm", "objective": "lambdarank", "n_estimators": 30}, "pointwise"),
        ({"kind": "mmoe", "n_experts": 2}, "listwise"),
    ],
    ids=["lightgbm-lambdarank", "mmoe-listwise"],
)
def test_list_objectives_rank_end_to_end(
    sim_train: Dataset, rank_data, model: dict, loss: str
) -> None:
    """Scores in [0, 1] that order each query (GAUC), fusion tuned on them, no down-sampling
    correction (they are not probabilities), identical after state/from_state."""
    config = _config(model, loss).rank
    ranker = Ranker(config, rank_data.tasks).fit(
        sim_train, rank_data.train, rank_data.valid, rank_data.log
    )
    assert ranker.stats["outputs"] == "ranking_scores"
    scored = ranker.score(rank_data.valid, rank_data.log)
    p = scored["p_click"].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    within = gauc(scored["label_click"].to_numpy(), p, scored["query_id"].to_numpy()).value
    assert within > 0.56  # random: 0.50 +- 0.02 here
    assert ranker.stats["fusion"]["best"] >= ranker.stats["fusion"]["uniform"]
    if loss == "listwise":
        assert np.isfinite(ranker.stats["best_valid_loss"])
    x = ranker.features.transform(rank_data.valid, rank_data.log)  # type: ignore[union-attr]
    ranker.keep_rate = 0.25  # as if negatives had been down-sampled
    uncorrected = ranker.predict_features(x)
    for task, raw in ranker._raw_probs(x).items():
        np.testing.assert_array_equal(uncorrected[task], raw)
    _assert_round_trip(ranker, scored, rank_data, lean=model["kind"] in FLAT_KINDS)


def test_listwise_batches_hold_whole_queries() -> None:
    config = RankConfig(model={"kind": "deepfm"}, train={"loss": "listwise", "batch_size": 64})
    ranker = Ranker(config, ("click",))
    rng = np.random.default_rng(0)
    query = rng.permutation(np.repeat(np.arange(40) * 11, rng.integers(1, 30, 40)))
    n = query.size
    empty = DenseSequences(
        np.zeros((n, 0), np.int64), np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    )
    spec = FeatureSpec(("row",), (n,), 0, 0, 0, 0, ("click",))
    features = RankFeatures(
        spec, np.arange(n)[:, None], np.zeros((n, 0), np.float32), empty, {}, query, query
    )
    table = BatchTable(features, query=True)
    for epoch in (0, 1):
        batches = list(ranker._batches(table, epoch))
        rows = torch.cat([b["sparse"][:, 0] for b in batches])
        assert sorted(rows.tolist()) == list(range(query.size))
        seen: set[int] = set()
        for batch in batches:
            ids = set(batch[QUERY_KEY].tolist())
            assert not ids & seen, "a query was split across batches"
            assert torch.equal(batch[QUERY_KEY], torch.from_numpy(query)[batch["sparse"][:, 0]])
            seen |= ids
    first = [b[QUERY_KEY][0].item() for b in ranker._batches(table, 0)]
    second = [b[QUERY_KEY][0].item() for b in ranker._batches(table, 1)]
    assert first != second  # queries are reshuffled every epoch


def test_isotonic_calibration_matches_observed_rates_and_round_trips(
    sim_train: Dataset, rank_data
) -> None:
    base = _config({"kind": "lightgbm", "n_estimators": 20}).rank
    config = base.model_copy(
        update={"train": base.train.model_copy(update={"calibration": "isotonic"})}
    )
    ranker = Ranker(config, rank_data.tasks).fit(
        sim_train, rank_data.train, rank_data.valid, rank_data.log
    )
    assert set(ranker.stats["calibrated_tasks"]) <= set(rank_data.tasks)
    assert "click" in ranker.calibrators
    scored = ranker.score(rank_data.valid, rank_data.log)
    p, labels = scored["p_click"].to_numpy(), scored["label_click"].to_numpy()
    # Isotonic regression keeps the mean: fitted on these samples, mean p = observed rate.
    assert abs(float(p.mean()) - float(labels.mean())) < 1e-4
    again = Ranker.from_state(config, ranker.state()).score(rank_data.valid, rank_data.log)
    assert again["p_click"].to_list() == scored["p_click"].to_list()


def test_the_same_fit_twice_on_two_threads_gives_the_same_scores(
    sim_train: Dataset, rank_data
) -> None:
    """Seeds are not enough with two intra-op threads (kernels that accumulate in scheduling
    order made two fits differ by up to 2e-5); the loop runs torch's deterministic kernels."""
    config = _config({"kind": "mmoe", "n_experts": 2}).rank
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        scores = [
            Ranker(config, rank_data.tasks)
            .fit(sim_train, rank_data.train, rank_data.valid, rank_data.log)
            .score(rank_data.valid, rank_data.log)["score"]
            .to_list()
            for _ in range(3)
        ]
    finally:
        torch.set_num_threads(threads)
    assert scores[0] == scores[1] == scores[2]
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's setting is back


def test_a_big_batch_reads_a_prepared_log_only_when_the_log_is_longer(
    sim_train: Dataset, rank_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past PREPARED_MAX_SAMPLES the index is built (on the second sighting) only for a log
    longer than the batch, and the scores are the same as the plain path's."""
    config = _config({"kind": "lightgbm", "n_estimators": 10}).rank
    ranker = Ranker(config, rank_data.tasks).fit(
        sim_train, rank_data.train, rank_data.valid, rank_data.log
    )
    batch = rank_data.valid
    assert rank_data.log.height > batch.height
    monkeypatch.setattr(ranker_module, "PREPARED_MAX_SAMPLES", batch.height - 1)
    plain = ranker.score(batch, rank_data.log)
    again = ranker.score(batch, rank_data.log)
    assert ranker._log_seen is not None and ranker._log_seen[1] is not None
    assert again["score"].to_list() == plain["score"].to_list()
    short = rank_data.log.head(batch.height)  # no longer than the batch: never indexed
    ranker.score(batch, short)
    ranker.score(batch, short)
    assert ranker._log_seen[0] is rank_data.log  # the short log was never held for an index

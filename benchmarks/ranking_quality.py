"""Ranking quality: every ranking model side by side on the same samples and features.

Per dataset, as ``funnelrec run`` does: a global temporal split (``TemporalSplitConfig()``,
last 10% of the time span held out) and the training ``Dataset``; ranking samples from the
end of the training period (``build_rank_data``); point-in-time features computed **once**
and shared by every model (``Ranker.fit_features``). Test samples come from the held-out
period:

* **taobao** (../shared Taobao UserBehavior head, pv -> click, cart, buy -> order; events
  outside the official 2017-11-25..12-03 window dropped): ``rank.samples.source="recall"``. Training
  samples are recall candidates (ItemCF 150 + recent popularity 50, merged to 200, re-fitted
  on the time before the sample window) labelled by the window's events. Test samples: recall
  fitted on the whole training side, one query per user with held-out positives at the
  cutoff, the merged top ``rank.serve.score_k`` (200) candidates labelled by that user's
  test-period events (non-interacted candidates = negatives); features read the training
  log. Recall keeps already-seen items (``exclude_seen=False``): most carts and buys follow a
  view of the same item, and without them the 815-user head sample leaves ~1 cart and 0 buys
  among the test candidates. ``rank.samples.window_fraction=0.5`` (default 0.25).
* **mind** (../shared MIND small sample, impressions): ``rank.samples.source="impressions"``, task
  click; negatives are the real non-clicked news of each impression. Test samples: the test
  period's impression slates, features from the whole log (point in time).
  ``rank.samples.window_fraction=0.5``.
* **simulator** (``--sim-interactions`` rows, impressions): click / cart / order on impression
  slates, test samples as for MIND.

Training samples are capped by ``--max-train-samples`` (whole queries, then the latest 20% of
queries become validation) and test samples by ``--max-test-samples``.

Models: independent LightGBM boosters (one per task), DeepFM, DCN-v2, DIN, Shared-Bottom,
MMoE, PLE, ESMM (needs a CTR task plus a post-click task: skipped on single-task MIND), with
their default hyper-parameters. Neural models train on CPU for at most ``--epochs`` epochs
(early stopping on the validation queries, patience 1), batch 2048. Fusion is fixed (uniform
weighted sum) since only the per-task probabilities are scored here. Reported per task: AUC,
GAUC (query-grouped), LogLoss; per model: training samples/s (``Ranker.stats``: optimizer
steps over all epochs, validation passes included) and inference samples/s
(``predict_features`` over the test samples).

    .venv/bin/python benchmarks/ranking_quality.py [--sim-interactions 1000000]
        [--datasets taobao mind simulator] [--models lightgbm deepfm ...] [--epochs 3]
        [--max-train-samples 100000] [--max-test-samples 200000]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch

from _common import SHARED_DATA, console, load_tables, render, taobao_in_window, write_json
from funnelrec.config.experiment import ExperimentConfig, RecallConfig
from funnelrec.data.convert import read_format
from funnelrec.data.dataset import Dataset
from funnelrec.data.io import RawTables
from funnelrec.data.split import Split, TemporalSplitConfig
from funnelrec.eval.protocol import split_and_index
from funnelrec.features.pit import PointInTimeFeatures
from funnelrec.features.spec import RankFeatures
from funnelrec.metrics.rank import rank_report
from funnelrec.pipeline.rank_samples import (
    RankData,
    build_rank_data,
    merged_candidates,
    take_queries,
)
from funnelrec.pipeline.recall_fit import fit_recall
from funnelrec.rank.config import (
    FusionSearchConfig,
    RankConfig,
    RankSamplesConfig,
    RankTrainConfig,
)
from funnelrec.rank.fusion import FusionConfig
from funnelrec.rank.gbdt_config import LightGBMConfig
from funnelrec.rank.models import (
    DCNv2Config,
    DeepFMConfig,
    DINConfig,
    ESMMConfig,
    MMoEConfig,
    PLEConfig,
    SharedBottomConfig,
)
from funnelrec.rank.modules.config import MLPConfig
from funnelrec.rank.ranker import Ranker
from funnelrec.rank.samples import candidate_samples, impression_samples, index_log
from funnelrec.recall.itemcf.config import ItemCFConfig
from funnelrec.recall.merge import MergeConfig
from funnelrec.recall.popular import PopularConfig

NAME = "ranking_quality"
DATASETS = ("taobao", "mind", "simulator")
MODELS: dict[str, Any] = {
    "lightgbm": LightGBMConfig(),
    "deepfm": DeepFMConfig(),
    "dcn_v2": DCNv2Config(),
    "din": DINConfig(),
    "shared_bottom": SharedBottomConfig(),
    "mmoe": MMoEConfig(),
    # The default MMoE at half the expert width: what a served request's ranker costs
    # against what it loses (the experts are ~3/4 of its multiply-adds).
    "mmoe_narrow": MMoEConfig(expert=MLPConfig(hidden=(128, 64))),
    "ple": PLEConfig(),
    "esmm": ESMMConfig(),
}
RANK_SETTINGS: dict[str, dict[str, Any]] = {
    # window_fraction: the last half of the training span gives the samples (default 0.25);
    # the two ../shared samples are small.
    "taobao": {"source": "recall", "tasks": ("click", "cart", "order"), "window_fraction": 0.5},
    "mind": {"source": "impressions", "tasks": ("click",), "window_fraction": 0.5},
    "simulator": {"source": "impressions", "tasks": ("click", "cart", "order")},
}
# Cheap candidate generation for the recall-source dataset (no two-tower training).
# Seen items stay eligible: on Taobao most carts/buys follow a view of the same item, and
# with exclude_seen the head sample's test candidates hold ~1 cart and 0 buys.
CHEAP_RECALL = RecallConfig(
    channels={
        "itemcf": ItemCFConfig(exclude_seen=False),
        "popular": PopularConfig(mode="recent", exclude_seen=False),
    },
    merge=MergeConfig(k=200, quotas={"itemcf": 150, "popular": 50}),
)
SEED_COLUMNS = ["dataset", "model", "task", "AUC", "GAUC", "train samples/s", "infer samples/s"]
MIND_FOLDER = "mind-small-sample"
COLUMNS = [
    "dataset",
    "model",
    "task",
    "AUC",
    "GAUC",
    "LogLoss",
    "train samples/s",
    "infer samples/s",
]


def load(dataset: str, sim_interactions: int) -> tuple[RawTables | None, dict]:
    """Canonical tables of ``dataset`` (None when its ../shared folder is absent) + notes."""
    notes: dict = {}
    if dataset == "mind":
        path = SHARED_DATA / MIND_FOLDER
        if not path.is_dir():
            console.print(f"[yellow]skip mind: {path} not found[/yellow]")
            return None, notes
        return read_format("mind", path), notes
    tables = load_tables(dataset, sim_interactions=sim_interactions)
    if tables is not None and dataset == "taobao":
        tables, notes["dropped_outside_window"] = taobao_in_window(tables)
    return tables, notes


def experiment_config(dataset: str, args: argparse.Namespace) -> ExperimentConfig:
    base = ExperimentConfig()
    settings = RANK_SETTINGS[dataset]
    rank = RankConfig(
        samples=RankSamplesConfig(**settings, max_train_samples=args.max_train_samples),
        train=RankTrainConfig(
            loop=base.rank.train.loop.model_copy(update={"epochs": args.epochs}),
            device="cpu",
            health=False,
        ),
        # Only per-task probabilities are scored: skip the fusion search.
        fusion=FusionSearchConfig(
            formula=FusionConfig(weights={t: 1.0 for t in settings["tasks"]})
        ),
    )
    recall = CHEAP_RECALL if settings["source"] == "recall" else base.recall
    evaluation = base.eval.model_copy(update={"rank_test_samples": args.max_test_samples})
    return ExperimentConfig(split=TemporalSplitConfig(), recall=recall, rank=rank, eval=evaluation)


def impression_test_samples(
    tables: RawTables, train: Dataset, split: Split, rank_data: RankData, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Test-period impression slates and the log their features read (the whole log)."""
    full = index_log(tables.interactions, train)
    future = full.filter(pl.col("timestamp") >= split.as_of)
    samples = impression_samples(future, rank_data.sample_config, rng=rng)
    return samples, full


def candidate_test_samples(
    tables: RawTables,
    train: Dataset,
    split: Split,
    rank_data: RankData,
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Recall candidates of the held-out users at the cutoff, labelled by their test-period
    events; features read the training log (every sample is at the cutoff)."""
    recommender = fit_recall(config, train, rng).recommender
    full = index_log(tables.interactions, train)
    future = full.filter(pl.col("timestamp") >= split.as_of)
    users = split.test["user_id"].unique().sort()
    queries = recommender.queries(users, split.as_of)
    candidates = merged_candidates(
        recommender, queries, config.rank.serve.score_k, config.eval.batch_size
    )
    # Users new in the test period keep the fresh index index_log gave them, so their
    # test events still label their candidates (features treat them as unknown).
    ids = full.select("user_id", "user_idx").unique("user_id")
    query_frame = (
        pl.DataFrame({"query_id": queries.query_id, "user_id": users})
        .join(ids, on="user_id", how="left", maintain_order="left")
        .select("query_id", "user_idx", pl.lit(split.as_of, dtype=pl.Int64).alias("timestamp"))
    )
    samples = candidate_samples(query_frame, candidates, future, rank_data.sample_config, rng=rng)
    return samples, rank_data.log


def positive_rates(x: RankFeatures) -> dict[str, float]:
    return {t: float(v.mean()) if len(v) else 0.0 for t, v in x.labels.items()}


def positive_counts(x: RankFeatures) -> dict[str, int]:
    return {t: int(v.sum()) for t, v in x.labels.items()}


def run_models(
    config: ExperimentConfig,
    tasks: tuple[str, ...],
    x_train: RankFeatures,
    x_valid: RankFeatures,
    x_test: RankFeatures,
    models: dict[str, Any],
) -> dict[str, dict]:
    """Fit each of ``models`` (name -> model config) on the shared features; test metrics."""
    out: dict[str, dict] = {}
    for name, model_config in models.items():
        if isinstance(model_config, ESMMConfig) and len(tasks) < 2:
            console.print(f"  {name}: skipped (needs a CTR task and a post-click task)")
            out[name] = {"skipped": "ESMM needs a CTR task and at least one post-click task"}
            continue
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        ranker = Ranker(config.rank.model_copy(update={"model": model_config}), tasks)
        ranker.fit_features(x_train, x_valid)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        probs = ranker.predict_features(x_test)
        predict_s = time.perf_counter() - start
        report = rank_report(x_test.labels, probs, x_test.group)
        stats = ranker.stats
        history = stats.get("history", [])
        out[name] = {
            "tasks": {
                t: {k: r[k] for k in ("auc", "gauc", "logloss", "positive_rate", "ece")}
                for t, r in report.items()
            },
            "train_samples_per_s": stats["train_samples_per_s"],
            "step_samples_per_s": (
                float(np.median([e["samples_per_s"] for e in history])) if history else None
            ),
            "infer_samples_per_s": len(x_test) / max(predict_s, 1e-9),
            "fit_s": round(fit_s, 3),
            "predict_s": round(predict_s, 3),
            "epochs": stats.get("epochs"),
            "best_valid_loss": stats.get("best_valid_loss"),
            # The machine is shared: 1-minute load average before and after the fit.
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "probs": probs,  # for callers that slice the test samples; dropped from the JSON
        }
        summary = ", ".join(f"{t} AUC {r['auc']:.4f}" for t, r in report.items())
        console.print(
            f"  {name}: {summary}; fit {fit_s:.1f} s "
            f"({stats['train_samples_per_s']:,.0f} samples/s), predict {predict_s:.2f} s"
        )
    return out


@dataclass
class Prepared:
    """One dataset's split, samples and features, shared by every model."""

    train: Dataset
    rank_data: RankData
    split: Split
    x_train: RankFeatures
    x_valid: RankFeatures
    x_test: RankFeatures
    timings: dict[str, float]


def prepare(tables: RawTables, config: ExperimentConfig) -> Prepared:
    """Split, ranking samples (training side and test period) and their features, once."""
    rng = np.random.default_rng(config.seed)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    split, train = split_and_index(tables.interactions, tables.items, tables.users, config)
    timings["split"] = time.perf_counter() - start

    start = time.perf_counter()
    rank_data = build_rank_data(train, config, rng)
    timings["train_samples"] = time.perf_counter() - start

    start = time.perf_counter()
    if rank_data.source == "impressions":
        test, test_log = impression_test_samples(tables, train, split, rank_data, rng)
    else:
        test, test_log = candidate_test_samples(tables, train, split, rank_data, config, rng)
    test = take_queries(test, config.eval.rank_test_samples, rng)
    timings["test_samples"] = time.perf_counter() - start

    start = time.perf_counter()
    pit = PointInTimeFeatures(config.rank.features).fit(train, rank_data.train, rank_data.log)
    x_train = pit.transform(rank_data.train, rank_data.log)
    x_valid = pit.transform(rank_data.valid, rank_data.log)
    x_test = pit.transform(test, test_log)
    timings["features"] = time.perf_counter() - start
    return Prepared(train, rank_data, split, x_train, x_valid, x_test, timings)


def describe(dataset: str, data: Prepared, notes: dict, seconds: float) -> dict:
    """Print and return the samples, positives and timings of a prepared dataset."""
    splits = {"train": data.x_train, "valid": data.x_valid, "test": data.x_test}
    counts = {name: len(x) for name, x in splits.items()}
    counts["train_queries"] = int(np.unique(data.x_train.group).shape[0])
    counts["test_queries"] = int(np.unique(data.x_test.group).shape[0])
    rates = {name: positive_rates(x) for name, x in splits.items()}
    positives = {name: positive_counts(x) for name, x in splits.items()}
    console.print(
        f"[bold]{dataset}[/bold]: source {data.rank_data.source}, tasks "
        f"{list(data.rank_data.tasks)}, samples train {counts['train']:,} / valid "
        f"{counts['valid']:,} / test {counts['test']:,} ({counts['test_queries']:,} test "
        "queries); test positives "
        + ", ".join(f"{t} {n:,} ({rates['test'][t]:.2%})" for t, n in positives["test"].items())
        + f"; data prep {seconds:.1f} s"
    )
    return {
        "source": data.rank_data.source,
        "tasks": list(data.rank_data.tasks),
        "notes": notes,
        "split": data.split.info,
        "rank_window": {
            k: data.rank_data.info[k] for k in ("window_start",) if k in data.rank_data.info
        },
        "samples": counts,
        "positive_rates": rates,
        "positives": positives,
        "features": {
            "sparse": list(data.x_train.spec.sparse_names),
            "n_dense": data.x_train.spec.n_dense,
            "seq_len": data.x_train.spec.seq_len,
        },
        "timings_s": {k: round(v, 3) for k, v in data.timings.items()},
    }


def seeded(name: str, config: Any, seeds: list[int]) -> dict[str, Any]:
    """``config`` once per seed (its own ``seed`` field set), named ``name@seed`` when there
    are several: differences between two models smaller than between two seeds are noise."""
    if len(seeds) == 1 and seeds[0] == 0:
        return {name: config}
    if "seed" not in type(config).model_fields:
        return {name: config}
    return {f"{name}@{s}": config.model_copy(update={"seed": s}) for s in seeds}


def seed_summary(results: dict[str, dict]) -> list[list[Any]]:
    """Rows of :data:`SEED_COLUMNS`: per dataset, model (seeds pooled) and task, the mean
    AUC and GAUC with their range over the seeds, and the mean throughputs."""
    rows: list[list[Any]] = []
    for dataset, res in results.items():
        pooled: dict[str, list[dict]] = {}
        for name, r in res["models"].items():
            if "skipped" not in r:
                pooled.setdefault(name.split("@")[0], []).append(r)
        for model, runs in pooled.items():
            for i, task in enumerate(runs[0]["tasks"]):
                cells = [dataset, model, task]
                for metric in ("auc", "gauc"):
                    values = [r["tasks"][task][metric] for r in runs]
                    cells.append(f"{np.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})")
                for speed in ("train_samples_per_s", "infer_samples_per_s"):
                    cells.append(f"{np.mean([r[speed] for r in runs]):,.0f}" if i == 0 else "")
                rows.append(cells)
    return rows


def run_dataset(dataset: str, args: argparse.Namespace) -> dict | None:
    t0 = time.perf_counter()
    tables, notes = load(dataset, args.sim_interactions)
    if tables is None:
        return None
    config = experiment_config(dataset, args)
    data = prepare(tables, config)
    out = describe(dataset, data, notes, time.perf_counter() - t0)
    models = {
        name: config
        for m in args.models
        if m in MODELS
        for name, config in seeded(m, MODELS[m], args.seeds).items()
    }
    results = run_models(
        config, data.rank_data.tasks, data.x_train, data.x_valid, data.x_test, models
    )
    for result in results.values():
        result.pop("probs", None)
    return {**out, "seconds": round(time.perf_counter() - t0, 2), "models": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-interactions", type=int, default=1_000_000)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=3, help="max epochs of neural models")
    parser.add_argument(
        "--max-train-samples",
        type=int,
        default=100_000,
        help="training samples (whole queries, before the validation split)",
    )
    parser.add_argument("--max-test-samples", type=int, default=200_000)
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0],
        help="model seeds (each model fits once per seed)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.perf_counter()
    results: dict[str, dict] = {}
    rows = []
    for dataset in args.datasets:
        res = run_dataset(dataset, args)
        if res is None:
            continue
        results[dataset] = res
        for model, r in res["models"].items():
            if "skipped" in r:
                rows.append([dataset, model, "-", "skipped", "", "", "", ""])
                continue
            for i, (task, m) in enumerate(r["tasks"].items()):
                rows.append(
                    [
                        dataset,
                        model,
                        task,
                        m["auc"],
                        m["gauc"],
                        m["logloss"],
                        f"{r['train_samples_per_s']:,.0f}" if i == 0 else "",
                        f"{r['infer_samples_per_s']:,.0f}" if i == 0 else "",
                    ]
                )
    total = time.perf_counter() - start
    render(
        f"Ranking quality on test exposures (same samples and features for every model; "
        f"CPU, {torch.get_num_threads()} threads, <= {args.epochs} epochs)",
        COLUMNS,
        rows,
    )
    if len(args.seeds) > 1:
        render(
            f"Mean over seeds {', '.join(map(str, args.seeds))} (min-max)",
            SEED_COLUMNS,
            seed_summary(results),
        )
    console.print(f"total {total:.1f} s (1-minute load average now {os.getloadavg()[0]:.2f})")
    write_json(
        NAME,
        {
            "settings": {
                "datasets": args.datasets,
                "models": args.models,
                "sim_interactions": args.sim_interactions,
                "epochs": args.epochs,
                "max_train_samples": args.max_train_samples,
                "max_test_samples": args.max_test_samples,
                "seeds": args.seeds,
                "device": "cpu",
                "threads": torch.get_num_threads(),
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
            },
            "seconds": round(total, 2),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()

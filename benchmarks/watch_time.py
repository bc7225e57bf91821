"""Watch-time objectives: click-only vs watch-time vs duration-debiased rankers, judged by
watch-time-weighted NDCG@10 and completion rate@10; and the objective trade-off of two fusion
weightings (with and without a like objective) against simulated next-day return.

Per dataset, as ``funnelrec run`` does: a global temporal split (last 10% of the span held
out), ranking samples from the end of the training period (``build_rank_data``,
``rank.samples.source="impressions"``) labelled with every objective at once, point-in-time
features computed once. One MMoE ranker (the default model, CPU, <= ``--epochs`` epochs) per
objective:

* **click-only**: task ``click`` (KuaiRec has no click: every row is a play; skipped);
* **watch-time**: task ``watch_time``, YouTube's weighted logistic regression (positives
  weighted by seconds played, a skip (< 3 s) an explicit negative);
* **duration-debiased**: task ``debiased_watch``, a play longer than the median play of
  videos in the same length decile (D2Q-style).

Test lists: every test-period exposure of a user pooled into one list (the slates of a day
are a feed), ordered by the objective's probability; gains = seconds played
(``metrics.watch.watch_time_ndcg``), completion = play >= 90% of the video.

Data: the simulator with ``watch`` and ``retention`` on (``--sim-interactions`` rows); the
../shared KuaiRec head (1 user, 1,000 plays; each play row gets an impression row so that
plays are exposures: KuaiRec logs every exposure as a watch) and the KuaiRand sample (200
exposures, 29 videos): tiny smoke samples, reported as they come.

The trade-off (simulator): one multi-task ranker (click, like, complete, watch_time), fused
by ``power_product`` with fixed weights; per weighting, logged click / like / watch-time NDCG
and completion, and from the simulator's ground truth the expected clicks, seconds watched
and next-day return of each user's top 10. Its ``objectives`` block is also written to
``--run-dir``/metrics.json: ``funnelrec report RUN_DIR`` renders it with its plot.

    .venv/bin/python benchmarks/watch_time.py [--sim-interactions 300000]
        [--datasets simulator kuairec kuairand] [--epochs 2] [--run-dir runs/watch_time]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from _common import ROOT, SHARED_DATA, SHARED_SETS, console, render, write_json
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.convert import read_format
from funnelrec.data.io import RawTables
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.watch import WatchTruth
from funnelrec.data.simulator.watch_config import RetentionConfig, WatchConfig
from funnelrec.data.split import TemporalSplitConfig
from funnelrec.eval.objectives import LoggedOutcomes, objective_tradeoff
from funnelrec.eval.protocol import split_and_index
from funnelrec.features.pit import PointInTimeFeatures
from funnelrec.features.spec import RankFeatures
from funnelrec.metrics.rank import grouped_ndcg
from funnelrec.metrics.watch import completion_rate_at_k, watch_time_ndcg
from funnelrec.pipeline.rank_samples import build_rank_data
from funnelrec.rank.config import FusionSearchConfig, RankConfig, RankSamplesConfig, RankTrainConfig
from funnelrec.rank.duration import exposure_plays, with_sample_weights
from funnelrec.rank.fusion import FusionConfig
from funnelrec.rank.labels import DURATION_TASKS
from funnelrec.rank.ranker import Ranker
from funnelrec.rank.samples import impression_samples, index_log

NAME = "watch_time"
DATASETS = ("simulator", "kuairec", "kuairand")
K = 10
OBJECTIVES = {
    "click-only": "click",
    "watch-time": "watch_time",
    "duration-debiased": "debiased_watch",
}
WEIGHTINGS = {
    "without like": {"click": 1.0, "complete": 1.0, "watch_time": 1.0},
    "with like": {"click": 1.0, "like": 1.0, "complete": 1.0, "watch_time": 1.0},
    "click only": {"click": 1.0},
}
# The ../shared samples are tiny: most of the training span gives samples, any positive counts.
SMALL = {"window_fraction": 0.75, "min_task_positives": 1, "guard_fraction": 0.0}
COLUMNS = ["dataset", "objective", f"watch-time NDCG@{K}", f"completion@{K}", f"click NDCG@{K}",
           "test lists", "fit s"]  # fmt: skip


@dataclasses.dataclass
class Data:
    tables: RawTables
    truth: WatchTruth | None
    notes: list[str]


def load(dataset: str, sim_interactions: int) -> Data | None:
    """The dataset's canonical tables (None when its ../shared folder is absent)."""
    if dataset == "simulator":
        watch = WatchConfig(enabled=True, retention=RetentionConfig(enabled=True))
        config = SimulatorConfig.for_interactions(sim_interactions).model_copy(
            update={"watch": watch}
        )
        sim = simulate(config)
        tables = RawTables(sim.interactions, sim.items, sim.users, ())
        return Data(tables, sim.watch, [])
    folder, fmt = SHARED_SETS[dataset]
    path = SHARED_DATA / folder
    if not path.is_dir():
        console.print(f"[yellow]skip {dataset}: {path} not found[/yellow]")
        return None
    tables = read_format(fmt, path)
    notes = list(tables.notes)
    if dataset == "kuairand" and any("synthesised" in n for n in notes):
        # Row-order seconds: spread the rows 2 h apart so that a row's 1 h label windows hold
        # its own events only and do not all cross the split.
        inter = tables.interactions.with_columns(pl.col("timestamp") * 7200)
        tables = dataclasses.replace(tables, interactions=inter)
        notes.append("synthetic row-order timestamps spread 2 h apart")
    if dataset == "kuairec":
        # KuaiRec logs each exposure as a watch: give every play its impression row.
        inter = tables.interactions
        shown = inter.with_columns(pl.lit("impression").alias("event"), pl.lit(None, pl.Float64)
                                   .alias("play_duration"))  # fmt: skip
        tables = dataclasses.replace(tables, interactions=pl.concat([shown, inter]))
        notes.append("each watch row given an impression row (KuaiRec logs exposures as plays)")
    return Data(tables, None, notes)


def experiment_config(dataset: str, tasks: tuple[str, ...], epochs: int) -> ExperimentConfig:
    small = SMALL if dataset != "simulator" else {}
    rank = RankConfig(
        samples=RankSamplesConfig(
            source="impressions", tasks=tasks, max_train_samples=100_000, **small
        ),
        train=RankTrainConfig(
            loop=RankTrainConfig().loop.model_copy(update={"epochs": epochs}),
            device="cpu",
            health=False,
        ),
        fusion=FusionSearchConfig(formula=FusionConfig(weights={t: 1.0 for t in tasks})),
    )
    return ExperimentConfig(split=TemporalSplitConfig(), rank=rank)


def only_tasks(x: RankFeatures, tasks: tuple[str, ...]) -> RankFeatures:
    """``x`` restricted to ``tasks`` (labels, spec): one ranker per objective."""
    spec = dataclasses.replace(x.spec, tasks=tasks)
    return dataclasses.replace(x, spec=spec, labels={t: x.labels[t] for t in tasks})


def trainable(x: RankFeatures, task: str) -> str | None:
    """Why ``task`` cannot be trained on ``x`` (None when it can)."""
    if task not in x.labels:
        return f"no '{task}' task in this log"
    y = x.labels[task]
    if y.size == 0 or y.min() == y.max():
        return f"'{task}' labels are all {y[0] if y.size else '-'} in the training samples"
    return None


def fit_ranker(config: RankConfig, tasks: tuple[str, ...], x_train, x_valid) -> Ranker:
    ranker = Ranker(config, tasks)
    return ranker.fit_features(only_tasks(x_train, tasks), only_tasks(x_valid, tasks))


def prepare(data: Data, config: ExperimentConfig) -> dict[str, Any]:
    """Split, labelled samples (train, valid, test) and their features, once per dataset."""
    rng = np.random.default_rng(0)
    tables = data.tables
    split, train = split_and_index(tables.interactions, tables.items, tables.users, config)
    rank_data = build_rank_data(train, config, rng)
    full = index_log(tables.interactions, train)
    future = full.filter(pl.col("timestamp") >= split.as_of)
    test = impression_samples(future, rank_data.sample_config, rng=rng)
    pit = PointInTimeFeatures(config.rank.features).fit(train, rank_data.train, rank_data.log)
    x = {
        part: with_sample_weights(pit.transform(samples, rank_data.log), samples)
        for part, samples in (("train", rank_data.train), ("valid", rank_data.valid))
    }
    x["test"] = pit.transform(test, full)
    play, _ = exposure_plays(test, future, DURATION_TASKS["watch_time"])
    ids = full.select("user_idx", "item_idx", "user_id", "item_id").unique(["user_idx", "item_idx"])
    keyed = test.select("user_idx", "item_idx").join(ids, on=["user_idx", "item_idx"], how="left")
    return {"x": x, "test": test, "play": play, "keyed": keyed, "info": rank_data.info}


def outcomes_of(test: pl.DataFrame, play: np.ndarray) -> LoggedOutcomes:
    """Logged outcomes of the test exposures, one list per user (the test period's feed)."""

    def col(task: str) -> np.ndarray | None:
        name = f"label_{task}"
        return test[name].to_numpy().astype(np.float64) if name in test.columns else None

    click = col("click")
    return LoggedOutcomes(
        group=test["user_idx"].to_numpy().astype(np.int64),
        click=click if click is not None else (play > 0).astype(np.float64),
        play_s=play,
        completed=col("complete") if col("complete") is not None else np.zeros_like(play),
        like=col("like"),
    )


def run_objectives(dataset: str, prep: dict, config: RankConfig) -> dict[str, dict]:
    x, out = prep["x"], {}
    outcomes = outcomes_of(prep["test"], prep["play"])
    for name, task in OBJECTIVES.items():
        reason = trainable(x["train"], task)
        if reason is not None:
            out[name] = {"skipped": reason}
            console.print(f"  {dataset} {name}: skipped ({reason})")
            continue
        start = time.perf_counter()
        ranker = fit_ranker(config, (task,), x["train"], x["valid"])
        fit_s = time.perf_counter() - start
        score = ranker.predict_features(only_tasks(x["test"], (task,)))[task]
        g = outcomes.group
        out[name] = {
            "task": task,
            f"watch_time_ndcg@{K}": watch_time_ndcg(outcomes.play_s, score, g, K),
            f"completion@{K}": completion_rate_at_k(outcomes.completed, score, g, K),
            f"click_ndcg@{K}": grouped_ndcg(outcomes.click, score, g, K),
            "fit_s": round(fit_s, 2),
            "epochs": ranker.stats.get("epochs"),
        }
        console.print(f"  {dataset} {name}: {out[name]}")
    return out


def run_tradeoff(prep: dict, config: RankConfig, truth: WatchTruth | None) -> dict | None:
    """The multi-task ranker and its fusion weightings (needs click, like and durations)."""
    x = prep["x"]
    tasks = ("click", "like", "complete", "watch_time")
    reasons = [r for t in tasks if (r := trainable(x["train"], t)) is not None]
    if reasons:
        return {"skipped": "; ".join(reasons)}
    ranker = fit_ranker(config, tasks, x["train"], x["valid"])
    probs = ranker.predict_features(only_tasks(x["test"], tasks))
    keyed = prep["keyed"]
    return objective_tradeoff(
        probs,
        {name: FusionConfig(kind="power_product", weights=w) for name, w in WEIGHTINGS.items()},
        outcomes_of(prep["test"], prep["play"]),
        k=K,
        truth=truth,
        user_id=keyed["user_id"].to_numpy(),
        item_id=keyed["item_id"].to_numpy(),
    )


def run_dataset(dataset: str, args: argparse.Namespace) -> dict | None:
    t0 = time.perf_counter()
    data = load(dataset, args.sim_interactions)
    if data is None:
        return None
    events = set(data.tables.interactions["event"].unique().to_list())
    tasks = tuple(t for t in ("click", "like") if t in events)
    tasks += ("complete", "watch_time", "debiased_watch")
    config = experiment_config(dataset, tasks, args.epochs)
    prep = prepare(data, config)
    n_lists = int(np.unique(prep["test"]["user_idx"].to_numpy()).shape[0])
    console.print(
        f"[bold]{dataset}[/bold]: {data.tables.interactions.height:,} rows; samples "
        f"train {len(prep['x']['train']):,} / valid {len(prep['x']['valid']):,} / test "
        f"{len(prep['x']['test']):,} in {n_lists} test lists; tasks {prep['info']['tasks']}"
    )
    result: dict[str, Any] = {
        "notes": data.notes,
        "tasks": prep["info"]["tasks"],
        "dropped_tasks": prep["info"].get("dropped_tasks", {}),
        "samples": {name: len(x) for name, x in prep["x"].items()},
        "test_lists": n_lists,
        "objectives": run_objectives(dataset, prep, config.rank),
    }
    if dataset == "simulator":
        result["tradeoff"] = run_tradeoff(prep, config.rank, data.truth)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def write_run(run_dir: Path, results: dict[str, dict]) -> None:
    """metrics.json with the simulator's ``objectives`` block, for ``funnelrec report``."""
    tradeoff = results.get("simulator", {}).get("tradeoff")
    if not tradeoff or "skipped" in tradeoff:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"objectives": tradeoff, "split": {"kind": "temporal"}, "source": NAME}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    console.print(f"wrote {run_dir / 'metrics.json'} (render: funnelrec report {run_dir})")


def table_rows(results: dict[str, dict]) -> list[list[Any]]:
    rows = []
    for dataset, res in results.items():
        for name, r in res["objectives"].items():
            if "skipped" in r:
                rows.append([dataset, name, "skipped", r["skipped"], "", "", ""])
                continue
            rows.append([dataset, name, r[f"watch_time_ndcg@{K}"], r[f"completion@{K}"],
                         r[f"click_ndcg@{K}"], res["test_lists"], r["fit_s"]])  # fmt: skip
    return rows


def tradeoff_rows(tradeoff: dict) -> tuple[list[str], list[list[Any]]]:
    keys = [k for k in tradeoff["weightings"][0] if k not in ("name", "kind", "weights")]
    return ["weighting", *keys], [
        [w["name"], *[w[k] for k in keys]] for w in tradeoff["weightings"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-interactions", type=int, default=300_000)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--epochs", type=int, default=2, help="max epochs of each ranker")
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / NAME)
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.perf_counter()
    results = {d: r for d in args.datasets if (r := run_dataset(d, args)) is not None}
    render(
        f"Watch-time objectives: one MMoE ranker per objective, test lists = each user's "
        f"test-period exposures (CPU, {torch.get_num_threads()} threads)",
        COLUMNS,
        table_rows(results),
    )
    tradeoff = results.get("simulator", {}).get("tradeoff")
    if tradeoff and "skipped" not in tradeoff:
        columns, rows = tradeoff_rows(tradeoff)
        render(
            "Objective trade-off (simulator; sim_* = the simulator's ground truth)", columns, rows
        )
    total = time.perf_counter() - start
    console.print(f"total {total:.1f} s (1-minute load average now {os.getloadavg()[0]:.2f})")
    write_json(
        NAME,
        {
            "settings": {
                "datasets": args.datasets,
                "sim_interactions": args.sim_interactions,
                "epochs": args.epochs,
                "k": K,
                "threads": torch.get_num_threads(),
                "cpus": os.cpu_count(),
            },
            "seconds": round(total, 2),
            "results": results,
        },
    )
    write_run(args.run_dir, results)


if __name__ == "__main__":
    main()

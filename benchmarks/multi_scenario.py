"""Multi-scenario ranking: STAR vs one shared model vs one model per scenario vs the shared
model with a scenario id feature, per-scenario AUC / GAUC.

Data:

* **simulator** (``--sim-interactions`` rows) with the three preset scenarios
  (``ScenarioConfig.preset()``: a scrolled feed, an item detail page, search), which differ in
  position curve, click propensity, slate sources and per-category engagement;
* **kuairand** (../shared KuaiRand sample, scenario = its ``tab``): run as far as the sample
  allows; the result notes what it can and cannot show.

Samples: every logged impression slate (``impression_samples``; click / cart / order on the
simulator, click on KuaiRand), split by query time into the first 70% (training), the next
10% (validation: early stopping) and the last 20% (test). Point-in-time features are computed
once from the whole log (each sample reads only events strictly before it) and shared by every
model; the scenario field (``ScenarioVocab``) is appended for the models that read it.

Models, with the same hidden widths (``--hidden``, default 128 64) and a 64-unit tower per
task, trained by the one loop on CPU (``--epochs``, early stopping, batch 2048, fixed uniform
fusion):

* ``shared``: Shared-Bottom, no scenario feature;
* ``shared+id``: the same with the scenario id as one more sparse field;
* ``per-scenario``: one Shared-Bottom per scenario, trained on that scenario's samples only;
* ``star``: STAR (star-topology FCN, partitioned normalisation, auxiliary network).

Reported per model and scenario (and over all test samples): click AUC and GAUC; the JSON
holds every task's report.

    .venv/bin/python benchmarks/multi_scenario.py [--sim-interactions 200000] [--epochs 3]
        [--datasets simulator kuairand]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import polars as pl

from _common import console, load_tables, render, write_json
from funnelrec.data.dataset import Dataset
from funnelrec.data.io import RawTables
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.scenario_config import ScenarioConfig
from funnelrec.eval.scenarios import by_scenario
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures
from funnelrec.features.scenario import SCENARIO_COLUMN, ScenarioVocab
from funnelrec.features.spec import RankFeatures
from funnelrec.metrics.rank import rank_report
from funnelrec.rank.config import FusionSearchConfig, RankConfig, RankTrainConfig
from funnelrec.rank.fusion import FusionConfig
from funnelrec.rank.models import SharedBottomConfig, STARConfig
from funnelrec.rank.models.config import MLPConfig
from funnelrec.rank.ranker import Ranker
from funnelrec.rank.samples import SampleConfig, TaskLabel, impression_samples
from funnelrec.train.config import TrainLoopConfig

NAME = "multi_scenario"
MODELS = ("shared", "shared+id", "per-scenario", "star")
COLUMNS = ["dataset", "model", "scenario", "test samples", "click AUC", "click GAUC"]
TASKS = {
    "simulator": ("click", "cart", "order"),
    "kuairand": ("click",),
}


def load(dataset: str, args: argparse.Namespace) -> RawTables | None:
    if dataset == "simulator":
        config = SimulatorConfig.for_interactions(args.sim_interactions, seed=args.seed)
        sim = simulate(config.model_copy(update={"scenarios": ScenarioConfig.preset()}))
        return RawTables(sim.interactions, sim.items, sim.users, ())
    return load_tables(dataset)


def split_queries(samples: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Train / valid / test by query time (``query_id`` numbers slates in time order)."""
    q = samples["query_id"]
    lo, hi = np.quantile(q.to_numpy(), [0.7, 0.8])
    return {
        "train": samples.filter(q <= lo),
        "valid": samples.filter((q > lo) & (q <= hi)),
        "test": samples.filter(q > hi),
    }


def rank_config(model: Any, tasks: tuple[str, ...], args: argparse.Namespace) -> RankConfig:
    return RankConfig(
        model=model,
        train=RankTrainConfig(
            loop=TrainLoopConfig(epochs=args.epochs, lr=1e-3, clip_grad_norm=5.0),
            device="cpu",
            health=False,
        ),
        # Only per-task probabilities are scored: skip the fusion search.
        fusion=FusionSearchConfig(formula=FusionConfig(weights={t: 1.0 for t in tasks})),
    )


def fit_predict(
    model: Any,
    x: dict[str, RankFeatures],
    tasks: tuple[str, ...],
    args: argparse.Namespace,
) -> dict[str, np.ndarray]:
    ranker = Ranker(rank_config(model, tasks, args), tasks)
    ranker.fit_features(x["train"], x["valid"])
    return ranker.predict_features(x["test"])


def per_scenario_predictions(
    x: dict[str, RankFeatures],
    parts: dict[str, pl.DataFrame],
    tasks: tuple[str, ...],
    args: argparse.Namespace,
) -> dict[str, np.ndarray]:
    """One Shared-Bottom per scenario, each scoring its own scenario's test samples."""
    test_scn = parts["test"][SCENARIO_COLUMN].to_numpy()
    probs = {t: np.full(len(x["test"]), np.nan) for t in tasks}
    for name in np.unique(test_scn):
        rows = {p: np.flatnonzero(parts[p][SCENARIO_COLUMN].to_numpy() == name) for p in parts}
        if min(len(r) for r in rows.values()) == 0:
            continue
        sub = {p: x[p].take(r) for p, r in rows.items()}
        out = fit_predict(shared_bottom(args), sub, tasks, args)
        for t in tasks:
            probs[t][rows["test"]] = out[t]
    return probs


def shared_bottom(args: argparse.Namespace) -> SharedBottomConfig:
    return SharedBottomConfig(bottom=MLPConfig(hidden=tuple(args.hidden)))


def run_models(
    data: Dataset, samples: pl.DataFrame, tasks: tuple[str, ...], args: argparse.Namespace
) -> dict[str, Any]:
    parts = split_queries(samples)
    log = data.interactions
    pit = PointInTimeFeatures(PointInTimeConfig()).fit(data, parts["train"], log)
    plain = {p: pit.transform(s, log) for p, s in parts.items()}
    vocab = ScenarioVocab.fit(parts["train"])
    with_id = {p: vocab.add_field(plain[p], s) for p, s in parts.items()}
    test = parts["test"]
    labels = {t: test[f"label_{t}"].to_numpy() for t in tasks}
    results: dict[str, Any] = {}
    for model in args.models:
        start = time.perf_counter()
        if model == "shared":
            probs = fit_predict(shared_bottom(args), plain, tasks, args)
        elif model == "shared+id":
            probs = fit_predict(shared_bottom(args), with_id, tasks, args)
        elif model == "per-scenario":
            probs = per_scenario_predictions(plain, parts, tasks, args)
        else:
            star = STARConfig(star=MLPConfig(hidden=tuple(args.hidden)))
            probs = fit_predict(star, with_id, tasks, args)
        judged = np.isfinite(probs[tasks[0]])
        results[model] = {
            "all": {
                "tasks": rank_report(
                    {t: v[judged] for t, v in labels.items()},
                    {t: v[judged] for t, v in probs.items()},
                    test["query_id"].to_numpy()[judged],
                ),
                "n_samples": int(judged.sum()),
            },
            **by_scenario(test, labels, probs),
            "fit_s": round(time.perf_counter() - start, 1),
        }
        console.print(f"  {model}: {results[model]['fit_s']} s")
    return {
        "samples": {p: s.height for p, s in parts.items()},
        "scenarios": list(vocab.names),
        "results": results,
    }


def rows_of(dataset: str, report: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for model, result in report["results"].items():
        for scenario in ["all", *report["scenarios"]]:
            if scenario not in result:
                continue
            click = result[scenario]["tasks"]["click"]
            n = result[scenario]["n_samples"]
            rows.append([dataset, model, scenario, n, click["auc"], click["gauc"]])
    return rows


def run_dataset(dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    tables = load(dataset, args)
    if tables is None:
        return {"skipped": "data not found"}
    tasks = TASKS[dataset]
    interactions = tables.interactions
    if SCENARIO_COLUMN not in interactions.columns:
        return {"skipped": "the log has no scenario column"}
    data = Dataset.build(interactions, tables.items, tables.users)
    config = SampleConfig(tasks={t: TaskLabel(events=(t,)) for t in tasks})
    samples = impression_samples(data.interactions, config)
    n_scenarios = samples[SCENARIO_COLUMN].n_unique()
    notes = {"n_impression_samples": samples.height, "n_scenarios": n_scenarios}
    if n_scenarios < 2:
        notes["note"] = (
            f"one scenario only ({samples[SCENARIO_COLUMN].unique().to_list()}): the models "
            "are compared on it, but no per-scenario difference can show"
        )
    try:
        return {**notes, **run_models(data, samples, tasks, args)}
    except ValueError as error:  # e.g. too few samples for a split or a task
        return {**notes, "skipped": f"cannot fit: {error}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-interactions", type=int, default=200_000)
    parser.add_argument("--datasets", nargs="+", default=["simulator", "kuairand"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    reports: dict[str, Any] = {}
    rows: list[list[Any]] = []
    for dataset in args.datasets:
        console.print(f"[bold]{dataset}[/bold]")
        reports[dataset] = run_dataset(dataset, args)
        if "results" in reports[dataset]:
            rows += rows_of(dataset, reports[dataset])
        else:
            console.print(f"[yellow]skip {dataset}: {reports[dataset]['skipped']}[/yellow]")
    render("Per-scenario ranking quality (test impressions)", COLUMNS, rows)
    write_json(
        NAME,
        {
            "args": vars(args),
            "datasets": reports,
            "total_s": round(time.perf_counter() - start, 1),
        },
    )


if __name__ == "__main__":
    main()

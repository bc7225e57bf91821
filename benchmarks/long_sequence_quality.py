"""Long behaviour sequences: does attending over the last 1,000 behaviours beat DIN over 50?

Same protocol as ``ranking_quality.py`` (global temporal split, ranking samples from the end
of the training period, test samples from the held-out period, features computed once): the
features are computed once with sequences of ``--length`` behaviours (stored once per log,
gathered per batch), and DIN over the most recent 50 of them (``RankFeatures.shortened``) is
the short-sequence reference.

Datasets:

* **simulator_periodic**: the simulator with planted long-term periodic interests
  (``SimulatorConfig.long_term``, ``--share`` of the users; ``--span-days`` long so that
  bursts recur): the signal that lives hundreds of behaviours back (docs/data.md measures how
  much there is). Also reported: click GAUC on the test samples of the planted users alone.
* **taobao** (../shared Taobao UserBehavior head, the data of the SIM / ETA papers; ours is a
  small head sample of ~800 users and 9 days, so histories are short): the settings of
  ``ranking_quality.py``.

Models (default hyper-parameters, ``--epochs`` max, early stopping): ``din_50`` (the
reference), ``din`` over all ``--length`` behaviours (full target attention), ``sim_hard``,
``sim_soft``, ``eta``, ``sdim``, ``twin``. Reported: per task AUC / GAUC, the click-GAUC gain
over ``din_50`` (whichever way it goes), training and inference samples/s.

    .venv/bin/python benchmarks/long_sequence_quality.py [--datasets simulator_periodic taobao]
        [--length 1000] [--sim-rows 3000000] [--epochs 2] [--models din_50 sim_hard ...]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import polars as pl
import torch

from _common import load_tables, render, taobao_in_window, write_json
from funnelrec.data.io import RawTables
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.metrics.rank import rank_report
from funnelrec.rank.models import DINConfig
from funnelrec.rank.models.config import (
    ETAConfig,
    SDIMConfig,
    SIMHardConfig,
    SIMSoftConfig,
    TWINConfig,
)
from ranking_quality import describe, experiment_config, prepare, run_models

NAME = "long_sequence_quality"
DATASETS = ("simulator_periodic", "taobao")
SHORT = 50
MODELS: dict[str, Any] = {
    "din_50": DINConfig(),
    "din": DINConfig(),
    "sim_hard": SIMHardConfig(),
    "sim_soft": SIMSoftConfig(),
    "eta": ETAConfig(),
    "sdim": SDIMConfig(),
    "twin": TWINConfig(),
}


def periodic_simulator(args: argparse.Namespace) -> tuple[RawTables, set[int]]:
    """The simulator with planted periodic interests, and the planted users' ids."""
    base = SimulatorConfig.for_interactions(args.sim_rows, seed=args.seed).model_dump()
    base.update(
        n_users=args.sim_users,
        span_days=args.span_days,
        long_term={"share_of_users": args.share},
    )
    sim = simulate(SimulatorConfig.model_validate(base))
    planted = set(sim.periodic_interests["user_id"].to_list())
    return RawTables(sim.interactions, sim.items, sim.users, ()), planted


def run_dataset(dataset: str, args: argparse.Namespace) -> dict | None:
    t0 = time.perf_counter()
    planted: set[int] = set()
    notes: dict = {}
    if dataset == "simulator_periodic":
        tables, planted = periodic_simulator(args)
        settings = "simulator"
    else:
        loaded = load_tables(dataset)
        if loaded is None:
            return None
        tables, notes["dropped_outside_window"] = taobao_in_window(loaded)
        settings = dataset
    config = experiment_config(settings, args)
    features = config.rank.features.model_copy(update={"seq_len": args.length})
    config = config.model_copy(
        update={"rank": config.rank.model_copy(update={"features": features})}
    )
    data = prepare(tables, config)
    out = describe(dataset, data, notes, time.perf_counter() - t0)
    results: dict[str, dict] = {}
    for name in args.models:
        short = name == "din_50"
        x = [data.x_train, data.x_valid, data.x_test]
        if short:
            x = [part.shortened(SHORT) for part in x]
        results |= run_models(config, data.rank_data.tasks, *x, {name: MODELS[name]})
    if planted:
        ids = data.train.user_vocab.encode(pl.Series(sorted(planted)))
        rows = np.flatnonzero(np.isin(data.x_test.user_idx, ids[ids >= 0]))
        out["planted_test_samples"] = int(rows.shape[0])
        for result in results.values():
            probs = {t: p[rows] for t, p in result["probs"].items()}
            labels = {t: v[rows] for t, v in data.x_test.labels.items()}
            result["planted"] = rank_report(labels, probs, data.x_test.group[rows])
    for result in results.values():
        result.pop("probs", None)
    return {**out, "seconds": round(time.perf_counter() - t0, 2), "models": results}


def table_rows(dataset: str, res: dict) -> list[list]:
    models = res["models"]
    reference = models.get("din_50", {}).get("tasks", {}).get("click", {}).get("gauc")
    rows = []
    for name, r in models.items():
        click = r["tasks"].get("click", {})
        planted = r.get("planted", {}).get("click", {})
        gain = click.get("gauc", np.nan) - reference if reference is not None else np.nan
        rows.append(
            [
                dataset,
                name,
                click.get("auc", np.nan),
                click.get("gauc", np.nan),
                gain,
                planted.get("gauc", np.nan) if planted else "",
                f"{r['train_samples_per_s']:,.0f}",
                f"{r['infer_samples_per_s']:,.0f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--length", type=int, default=1000, help="behaviours per sequence")
    parser.add_argument("--sim-rows", type=int, default=3_000_000, help="simulated rows")
    parser.add_argument("--sim-users", type=int, default=2_000)
    parser.add_argument("--span-days", type=float, default=240.0)
    parser.add_argument("--share", type=float, default=0.3, help="users with periodic interests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2, help="max epochs of each model")
    parser.add_argument("--max-train-samples", type=int, default=100_000)
    parser.add_argument("--max-test-samples", type=int, default=100_000)
    args = parser.parse_args()
    torch.manual_seed(0)
    results: dict[str, dict] = {}
    rows: list[list] = []
    for dataset in args.datasets:
        res = run_dataset(dataset, args)
        if res is None:
            continue
        results[dataset] = res
        rows += table_rows(dataset, res)
    render(
        f"Long sequences (L = {args.length}) vs DIN over the last {SHORT}: click on test "
        f"exposures (CPU, {torch.get_num_threads()} threads, <= {args.epochs} epochs)",
        [
            "dataset",
            "model",
            "AUC",
            "GAUC",
            f"GAUC - din_{SHORT}",
            "GAUC planted users",
            "train samples/s",
            "infer samples/s",
        ],
        rows,
    )
    write_json(NAME, {"settings": vars(args), "datasets": results})


if __name__ == "__main__":
    main()

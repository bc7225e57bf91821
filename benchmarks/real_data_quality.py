"""Real-data quality: the default funnel against single-channel baselines, with 95% intervals.

Per dataset and protocol, ``run_experiment`` (what ``funnelrec run`` runs) with the default
``ExperimentConfig()``: only the split kind and evaluation settings (K = 10, 50; no latency or
re-ranking sweep) differ. EASE and ALS (with their own config defaults) also run alone as
single-channel baselines on the same split (no ranker, rules-only re-ranking), listed as
``ease_alone`` / ``als_alone`` so they never clash with a funnel channel of the same kind; their
per-query values are paired with the funnel's by held-out user, so every list is judged on the
same queries.

Per dataset: each list's Recall@50 and NDCG@10 with its 95% bootstrap interval over queries,
the final list's paired difference against it, the ranker's AUC / GAUC and the guard
decisions; on the RecBole 8:1:1 split the funnel's Recall@10 / NDCG@10 beside the published
ItemKNN and EASE numbers. Summary: the final list against the best single channel and against
popularity (verdict "WORSE" when a paired interval lies entirely below zero).

    .venv/bin/python benchmarks/real_data_quality.py [--quick] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from _common import console, load_tables, render, taobao_in_window, write_json
from funnelrec.config.experiment import EvalConfig, ExperimentConfig, RecallConfig
from funnelrec.data.split import (
    LeaveLastOutConfig,
    RandomRatioConfig,
    SplitConfig,
    TemporalSplitConfig,
)
from funnelrec.errors import FunnelrecError
from funnelrec.eval.intervals import FINAL_LISTS, final_list, list_intervals
from funnelrec.eval.protocol import ExperimentResult, run_experiment
from funnelrec.rank.config import RankConfig
from funnelrec.recall.als import ALSConfig
from funnelrec.recall.ease import EASEConfig
from funnelrec.recall.merge import MergeConfig
from funnelrec.recall.registry import ChannelConfig
from funnelrec.rerank.config import RerankConfig

NAME = "real_data_quality"
EVAL = EvalConfig(ks=(10, 50), latency_requests=0, rerank_sweep_queries=0)
NDCG, RECALL = "ndcg@10", "recall@50"
LEVEL, N_BOOT = ExperimentConfig().guards.level, 1000
ALLOWANCE = ExperimentConfig().guards.rerank_max_loss
BASELINES: dict[str, ChannelConfig] = {"ease_alone": EASEConfig(), "als_alone": ALSConfig()}
# RecBole's published MovieLens-100k numbers (random 8:1:1, full ranking): Recall@10, NDCG@10.
YARDSTICKS = {"ItemKNN": (0.212, 0.268), "EASE": (0.265, 0.335)}
SUMMARY_TITLE = "Final list vs best single channel and popularity (paired 95%)"
SUMMARY_COLUMNS = [
    "dataset",
    "metric",
    "final",
    "best channel",
    "final - best",
    "final - popular",
    "AUC>0.5",
    "verdict",
]
MIN_USERS = 20  # fewer users cannot give a held-out query set worth an interval


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    split: SplitConfig
    sim_interactions: int = 0


TEMPORAL = TemporalSplitConfig()
CASES = (
    Case("ml-100k temporal", "movielens-100k", TEMPORAL),
    Case("ml-100k leave-last-out", "movielens-100k", LeaveLastOutConfig()),
    Case("ml-100k random 8:1:1", "movielens-100k", RandomRatioConfig()),
    Case("taobao head temporal", "taobao", TEMPORAL),
    Case("mind sample temporal", "mind", TEMPORAL),
    Case("kuairand sample temporal", "kuairand", TEMPORAL),
    Case("kuairec head temporal", "kuairec", TEMPORAL),
    Case("simulator 200k temporal", "simulator", TEMPORAL, 200_000),
)
QUICK = (CASES[0], Case("simulator 50k temporal", "simulator", TEMPORAL, 50_000))


def baseline_config(
    split: SplitConfig, name: str, channel: ChannelConfig, seed: int
) -> ExperimentConfig:
    """One channel alone: its list is merged as is, not ranked, rules-only re-ranked."""
    merge = MergeConfig(k=channel.k, quotas={name: channel.k}, tune=False)
    return ExperimentConfig(
        seed=seed,
        split=split,
        recall=RecallConfig(channels={name: channel}, merge=merge),
        rank=RankConfig(enabled=False),
        rerank=RerankConfig(method="rules"),
        eval=EVAL,
    )


def run_case(case: Case, seed: int) -> dict[str, Any]:
    tables = load_tables(case.source, sim_interactions=case.sim_interactions, seed=seed)
    if tables is None:
        return {"skipped": "../shared/data not found"}
    notes = list(tables.notes)
    if case.source == "taobao":
        tables, dropped = taobao_in_window(tables)
        notes.append(f"this benchmark drops those {dropped} events (taobao_in_window)")
    n_users = tables.interactions["user_id"].n_unique()
    if n_users < MIN_USERS:
        return {"skipped": f"{n_users} user(s) in the sample: too few held-out queries"}
    args = (tables.interactions, tables.items, tables.users)
    start = time.perf_counter()
    try:
        funnel = run_experiment(*args, ExperimentConfig(split=case.split, eval=EVAL, seed=seed))
    except FunnelrecError as e:
        return {"skipped": str(e)}
    per_query = dict(funnel.per_query)
    for name, channel in BASELINES.items():
        try:
            result = run_experiment(*args, baseline_config(case.split, name, channel, seed))
        except FunnelrecError as e:
            notes.append(f"{name}: failed: {e}")
            continue
        values = _aligned(result, funnel, name)
        if values is None:
            notes.append(f"{name}: no list on the funnel's queries (skipped or silent)")
        else:
            per_query[name] = values
    means = {n: {m: float(np.mean(v)) for m, v in rows.items()} for n, rows in per_query.items()}
    metrics = funnel.metrics
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "notes": notes,
        "split": metrics["split"],
        "means": means,
        "intervals": list_intervals(
            per_query, np.random.default_rng(seed), level=LEVEL, n_boot=N_BOOT
        ),
        "rank": _rank_summary(metrics.get("rank"), metrics["guards"]),
        "guards": metrics["guards"],
        "skipped_channels": {**metrics["skipped_channels"], **metrics["silent_channels"]},
    }


def _aligned(
    result: ExperimentResult, funnel: ExperimentResult, name: str
) -> dict[str, np.ndarray] | None:
    """The baseline channel's per-query values, when it ran on the funnel's held-out users
    (the same split gives the same users in the same order)."""
    if name not in result.per_query or result.query_users is None or funnel.query_users is None:
        return None
    if not result.query_users.equals(funnel.query_users):
        return None
    return result.per_query[name]


def _rank_summary(rank: dict[str, Any] | None, guards: list[dict[str, Any]]) -> dict[str, Any]:
    """AUC / GAUC per ranker task on the test candidates, or, for a ranker its guard
    bypassed, its AUC / GAUC on the guard slice (any positive task as the label)."""
    if rank is None:
        decision = next((g for g in guards if g["stage"] == "rank"), None)
        if decision is not None and not decision["kept"] and decision.get("detail"):
            return {
                "evaluated_on": "the guard slice (ranker bypassed)",
                "tasks": {"any": decision["detail"]},
            }
        bypassed = decision is not None and not decision["kept"]
        return {"skipped": "bypassed by its guard" if bypassed else "no ranking stage"}
    if "skipped" in rank:
        return {"skipped": rank["skipped"]}
    tasks = [t for t in rank.get("training", {}).get("tasks", []) if rank.get(t)]
    return {
        "evaluated_on": rank["evaluated_on"],
        "tasks": {t: _separation(rank[t]) for t in tasks},
        "dropped_tasks": rank.get("training", {}).get("dropped_tasks", {}),
    }


def _separation(task: dict[str, Any]) -> dict[str, Any]:
    keys = ("auc", "auc_low", "auc_high", "n_positives", "gauc")
    return {k: task[k] for k in keys if k in task}


def _ci(low: float, high: float) -> str:
    return f"[{low:.4f}, {high:.4f}]"


def _diff(d: dict[str, float] | None) -> str:
    return "-" if d is None else f"{d['mean']:+.4f} {_ci(d['low'], d['high'])}"


def _auc_ok(rank: dict[str, Any]) -> str:
    """ "yes" when every task's AUC is above 0.5; otherwise the failing tasks with their
    positives, "NO" when the interval lies wholly below 0.5 (worse than random beyond noise)."""
    tasks = rank.get("tasks", {})
    if not tasks:
        return "n/a"
    failing = {t: v for t, v in tasks.items() if not v["auc"] > 0.5}
    if not failing:
        return "yes"
    worse = any(v.get("auc_high", 1.0) < 0.5 for v in failing.values())
    shown = ", ".join(f"{t} {_auc(v)}" for t, v in failing.items())
    return f"{'NO' if worse else 'no'}: {shown}"


def _auc(v: dict[str, Any]) -> str:
    """``0.3900 [0.18, 0.60] on 7 pos`` (the interval and positives when known)."""
    text = f"{v['auc']:.4f}"
    if "auc_low" in v:
        text += f" [{v['auc_low']:.2f}, {v['auc_high']:.2f}] on {int(v['n_positives'])} pos"
    return text


def show_case(name: str, result: dict[str, Any]) -> None:
    iv, means = result["intervals"], result["means"]
    final = iv["final"]
    rows = []
    stages = [n for n in reversed(FINAL_LISTS) if n in means]  # merged, ranked, re-ranked
    for lst in [*(n for n in means if n not in FINAL_LISTS), *stages]:
        ci = iv["lists"][lst]
        paired = iv["paired"].get(lst, {})
        rows.append(
            [
                f"{lst} (final)" if lst == final else lst,
                f"{means[lst][RECALL]:.4f} {_ci(*ci[RECALL])}",
                f"{means[lst][NDCG]:.4f} {_ci(*ci[NDCG])}",
                _diff(paired.get(RECALL)),
                _diff(paired.get(NDCG)),
            ]
        )
    title = (
        f"{name}: {iv['n_queries']} queries, {result['split']['kind']} split, {result['seconds']} s"
    )
    render(
        title,
        ["list", "Recall@50 [95%]", "NDCG@10 [95%]", "final - list R@50", "final - list NDCG@10"],
        rows,
    )
    rank = result["rank"]
    if "skipped" in rank:
        console.print(f"  ranker: skipped ({rank['skipped']})", highlight=False)
    for task, v in rank.get("tasks", {}).items():
        console.print(
            f"  ranker {task}: AUC {_auc(v)}, GAUC {v['gauc']:.4f} on {rank['evaluated_on']}",
            highlight=False,
        )
    for task, n in rank.get("dropped_tasks", {}).items():
        console.print(f"  ranker {task}: not modelled ({n} training positives)", highlight=False)
    for g in result["guards"]:
        verdict = "kept" if g["kept"] else "BYPASSED"
        console.print(f"  guard {g['stage']}: {verdict}: {g['reason']}", highlight=False)
    for note in [*result["notes"], *(f"{c}: {r}" for c, r in result["skipped_channels"].items())]:
        console.print(f"  note: {note}", highlight=False)


def show_yardsticks(name: str, result: dict[str, Any]) -> None:
    """The funnel's Recall@10 / NDCG@10 beside RecBole's published ML-100k numbers."""
    rows = []
    for lst in (result["intervals"]["final"], "itemcf", "ease", "ease_alone"):
        if lst in result["means"]:
            values = result["means"][lst]
            row: list[Any] = [lst, values["recall@10"], values["ndcg@10"]]
            for recall, ndcg in YARDSTICKS.values():
                meets = values["recall@10"] >= recall and values["ndcg@10"] >= ndcg
                row.append(f"{recall} / {ndcg}: {'meets' if meets else 'below'}")
            rows.append(row)
    render(
        f"{name}: against published RecBole numbers",
        ["list", "Recall@10", "NDCG@10", *YARDSTICKS],
        rows,
    )


def _verdict(result: dict[str, Any], diffs: list[tuple[str, dict[str, float] | None]]) -> str:
    """Verdict "ok" when no paired interval of final - other lies entirely below zero. A kept
    diversifying re-ranker may give up ``guards.rerank_max_loss`` of the list's accuracy by
    design (docs/guards.md): when only that stands between the final list and "ok" (the
    interval's top reaches ``-allowance x other``), the verdict says so instead of "WORSE"."""
    strict = [d for _, d in diffs if d is not None and d["high"] < 0]
    if not strict:
        return "ok"
    reranked = any(
        g["stage"] == "rerank" and g["kept"] and g.get("metric") for g in result["guards"]
    )
    means, metric = result["means"], result["metric"]
    within = all(d is None or d["high"] >= -ALLOWANCE * means[other][metric] for other, d in diffs)
    return f"ok within the {ALLOWANCE:.0%} diversity allowance" if reranked and within else "WORSE"


def summary_rows(name: str, result: dict[str, Any]) -> list[list[Any]]:
    """One row per metric: the final list against the best single channel on that metric and
    against popularity, with :func:`_verdict`."""
    iv, means = result["intervals"], result["means"]
    final = iv["final"]
    channels = [n for n in means if n not in FINAL_LISTS]
    rows = []
    for metric in (NDCG, RECALL):
        best = max(channels, key=lambda c: means[c][metric])
        diffs = [(other, iv["paired"].get(other, {}).get(metric)) for other in (best, "popular")]
        rows.append(
            [
                name,
                metric,
                means[final][metric],
                f"{best} {means[best][metric]:.4f}",
                *(_diff(d) for _, d in diffs),
                _auc_ok(result["rank"]),
                _verdict({**result, "metric": metric}, diffs),
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ml-100k temporal + 50k simulator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--summary-from", metavar="JSON", help="only print the summary of an earlier run's JSON"
    )
    args = parser.parse_args()
    if args.summary_from:
        saved = json.loads(Path(args.summary_from).read_text())["results"]
        rows = [r for n, res in saved.items() if "intervals" in res for r in summary_rows(n, res)]
        render(SUMMARY_TITLE, SUMMARY_COLUMNS, rows)
        return
    results: dict[str, Any] = {}
    summary = []
    for case in QUICK if args.quick else CASES:
        console.print(f"[bold]{case.name}[/bold]: default funnel + {', '.join(BASELINES)} ...")
        result = run_case(case, args.seed)
        results[case.name] = result
        if "skipped" in result or final_list(result["means"]) is None:
            console.print(f"{case.name}: skipped: {result.get('skipped', 'no final list')}")
            continue
        show_case(case.name, result)
        if isinstance(case.split, RandomRatioConfig) and case.source == "movielens-100k":
            show_yardsticks(case.name, result)
        rows = summary_rows(case.name, result)
        result["verdict"] = "WORSE" if any(row[-1] == "WORSE" for row in rows) else "ok"
        summary += rows
    render(SUMMARY_TITLE, SUMMARY_COLUMNS, summary)
    write_json(NAME, {"args": vars(args), "level": LEVEL, "n_boot": N_BOOT, "results": results})


if __name__ == "__main__":
    main()

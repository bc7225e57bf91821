"""Rich tables for metrics.json (CLI-only: library code never prints)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

TABLE_KS = (10, 50, 200)


def recall_table(metrics: dict, title: str = "Recall stage (held-out users)") -> Table:
    recall = metrics["recall"]
    ks = [k for k in TABLE_KS if f"recall@{k}" in next(iter(recall.values()))]
    table = Table(title=title)
    table.add_column("channel")
    for k in ks:
        table.add_column(f"R@{k}", justify="right")
    for k in ks[:1]:
        table.add_column(f"NDCG@{k}", justify="right")
        table.add_column(f"MRR@{k}", justify="right")
        table.add_column(f"HR@{k}", justify="right")
    table.add_column(f"cov@{ks[-1]}", justify="right")
    for name, values in recall.items():
        row = [f"{values[f'recall@{k}']:.4f}" for k in ks]
        for k in ks[:1]:
            row += [
                f"{values[f'ndcg@{k}']:.4f}",
                f"{values[f'mrr@{k}']:.4f}",
                f"{values[f'hit@{k}']:.4f}",
            ]
        row.append(f"{values[f'coverage@{ks[-1]}']:.3f}")
        table.add_row(name, *row, style="bold" if name == "merged" else None)
    return table


def rank_table(rank: dict) -> Table:
    """Per-task AUC / GAUC / LogLoss / calibration of the ranking stage."""
    training = rank.get("training", {})
    table = Table(
        title=f"Rank stage: {rank['model']} trained on {training.get('source', '?')} "
        f"({training.get('train_samples', 0):,} samples), evaluated on {rank['evaluated_on']} "
        f"({rank['n_samples']:,} samples)"
    )
    for column in ("task", "AUC", "GAUC", "LogLoss", "pred/obs", "ECE", "pos. rate"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task in training.get("tasks", []):
        values = rank.get(task)
        if not values:
            continue
        table.add_row(
            task,
            f"{values['auc']:.4f}",
            f"{values['gauc']:.4f}",
            f"{values['logloss']:.4f}",
            f"{values['calibration']:.3f}",
            f"{values['ece']:.4f}",
            f"{values['positive_rate']:.4f}",
        )
    return table


def list_table(rank: dict) -> Table:
    """NDCG@K of the ranked list against the recall (merge) order on the same candidates."""
    table = Table(title="Ranked list vs recall order (NDCG@K, graded by task value)")
    for column in ("K", "ranked", "recall order"):
        table.add_column(column, justify="right")
    lists = rank.get("list", {})
    for key, value in lists.items():
        if key.startswith("ndcg@"):
            k = key.split("@")[1]
            table.add_row(k, f"{value:.4f}", f"{lists[f'recall_order_ndcg@{k}']:.4f}")
    return table


def timings_table(metrics: dict) -> Table:
    table = Table(title="Stage timings")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in metrics["timings_s"].items():
        table.add_row(stage, f"{seconds:.3f}")
    return table


def print_report(console: Console, metrics: dict) -> None:
    split = metrics["split"]
    data = metrics["data"]
    console.print(
        f"[bold]split[/bold] {split['kind']}: {split['n_queries']} held-out users "
        f"({split['n_cold_user_queries']} without history), "
        f"train {data['train_users']} users x {data['train_items']} items, "
        f"{data['train_positives']} positives"
    )
    for name, reason in metrics.get("skipped_channels", {}).items():
        console.print(f"[yellow]channel '{name}' skipped:[/yellow] {reason}")
    console.print(recall_table(metrics))
    if "rank" in metrics:
        console.print(rank_table(metrics["rank"]))
        console.print(list_table(metrics["rank"]))
        findings = metrics["rank"].get("training", {}).get("health_findings", [])
        for finding in findings:
            console.print(f"[yellow]training health:[/yellow] {finding['message']}")
    console.print(timings_table(metrics))

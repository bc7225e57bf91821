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
    console.print(timings_table(metrics))

"""Rich tables for metrics.json (CLI-only: library code never prints)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from funnelrec.eval.intervals import paired_metrics

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
        # the re-ranked list is at most rerank.pool long: no value at larger K
        row = [_cell(values.get(f"recall@{k}")) for k in ks]
        for k in ks[:1]:
            row += [_cell(values.get(f"{m}@{k}")) for m in ("ndcg", "mrr", "hit")]
        row.append(_cell(values.get(f"coverage@{ks[-1]}"), 3))
        table.add_row(name, *row, style="bold" if name in ("merged", "reranked") else None)
    return table


def interval_table(intervals: dict, means: dict) -> Table:
    """Each list's mean (``means``: metrics.json ``recall``) with its bootstrap interval, and
    the final list's paired difference against it."""
    final = intervals["final"]
    metrics = paired_metrics(intervals["lists"][final])
    level = round(100 * intervals["level"])
    table = Table(
        title=f"{level}% bootstrap intervals over {intervals['n_queries']} queries; "
        f"diff = {final} - list, paired by query"
    )
    table.add_column("list")
    for metric in metrics:
        table.add_column(_label(metric), justify="right")
    for metric in metrics:
        table.add_column(f"diff {_label(metric)}", justify="right")
    for name, values in intervals["lists"].items():
        row = [f"{means[name][m]:.4f} {_span(*values[m])}" if m in values else "-" for m in metrics]
        diffs = intervals["paired"].get(name, {})
        for metric in metrics:
            d = diffs.get(metric)
            # an interval entirely below zero: the final list is worse than this one
            style = "red" if d is not None and d["high"] < 0 else ""
            cell = "-" if d is None else f"{d['mean']:+.4f} {_span(d['low'], d['high'])}"
            row.append(f"[{style}]{cell}[/{style}]" if style else cell)
        table.add_row(name, *row, style="bold" if name == final else None)
    return table


def _label(metric: str) -> str:
    name, k = metric.split("@")
    return f"{'R' if name == 'recall' else name.upper()}@{k}"


def _span(low: float, high: float) -> str:
    return f"[{low:.4f}, {high:.4f}]"


def rank_table(rank: dict) -> Table:
    """Per-task AUC / GAUC / LogLoss / calibration of the ranking stage."""
    training = rank.get("training", {})
    table = Table(
        title=f"Rank stage: {rank['model']} trained on {training.get('source', '?')} "
        f"({training.get('train_samples', 0):,} samples), evaluated on {rank['evaluated_on']} "
        f"({rank['n_samples']:,} samples)"
    )
    for column in ("task", "AUC [95%]", "positives", "GAUC", "LogLoss", "pred/obs", "ECE"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task in training.get("tasks", []):
        values = rank.get(task)
        if not values:
            continue
        table.add_row(
            task,
            f"{values['auc']:.4f} {_span(values['auc_low'], values['auc_high'])}",
            f"{values['n_positives']:,.0f} ({values['positive_rate']:.2%})",
            f"{values['gauc']:.4f}",
            f"{values['logloss']:.4f}",
            f"{values['calibration']:.3f}",
            f"{values['ece']:.4f}",
        )
    for task, n in training.get("dropped_tasks", {}).items():
        table.add_row(task, "not modelled", f"{n} in training", "", "", "", "")
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


def _cell(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def funnel_table(funnel: dict) -> Table:
    """Stage by stage: what each stage hands on, its accuracy, diversity and latency."""
    k = funnel["k"]
    table = Table(
        title=f"Funnel per stage (held-out users; K = {k}; latency per request)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    # category coverage stays in metrics.json and the HTML report: 80 columns hold ten.
    columns = {
        "stage": "stage",
        "candidates": "cands",
        "candidate_recall": "cand R",
        f"recall@{k}": f"R@{k}",
        f"ndcg@{k}": f"NDCG@{k}",
        f"ild@{k}": "ILD",
        f"category_ild@{k}": "catILD",
        f"novelty@{k}": "novel",
        "p50_ms": "p50ms",
        "p99_ms": "p99ms",
    }
    rows = []
    for row in funnel["stages"]:
        cells = []
        for key in columns:
            value = row.get(key)
            if key == "candidates" and value is not None:
                cells.append(f"{value:.0f}")
            elif key in ("p50_ms", "p99_ms", f"novelty@{k}") and value is not None:
                cells.append(f"{value:.1f}")
            else:
                cells.append(_cell(value, 3))
        rows.append(cells)
    for i, (key, title) in enumerate(columns.items()):
        width = max([len(title), *(len(cells[i]) for cells in rows)])
        table.add_column(title, justify="left" if key == "stage" else "right", min_width=width)
    for cells in rows:
        table.add_row(*cells)
    return table


def rerank_table(rerank: dict) -> Table:
    """The accuracy-diversity sweep: NDCG and ILD at each lambda (MMR) / theta (DPP)."""
    k = rerank["k"]
    table = Table(
        title=f"Re-ranking trade-off on {rerank['sweep_queries']} queries "
        f"(default {rerank['method']} {rerank['params']}, similarity {rerank['similarity']})"
    )
    metric_keys = [m for m in rerank["baseline"] if m.endswith(f"@{k}")]
    for column in ("method", "param", *metric_keys):
        title = column.replace("category_", "cat_").replace("coverage", "cov")
        table.add_column(title, justify="left" if column == "method" else "right", no_wrap=True)
    table.add_row("none", "-", *[_cell(rerank["baseline"][m]) for m in metric_keys])
    table.add_row("default", "-", *[_cell(rerank["default"][m]) for m in metric_keys], style="bold")
    for method, points in rerank["tradeoff"].items():
        for point in points:
            table.add_row(method, f"{point['param']:g}", *[_cell(point[m]) for m in metric_keys])
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
    for name, reason in metrics.get("silent_channels", {}).items():
        console.print(f"[yellow]channel '{name}' silent:[/yellow] {reason}")
    console.print(recall_table(metrics))
    if metrics.get("intervals", {}).get("final"):
        console.print(interval_table(metrics["intervals"], metrics["recall"]))
    for guard in metrics.get("guards", []):
        console.print(f"guard {guard['stage']}: {guard['reason']}", highlight=False)
    if "skipped" in metrics.get("rank", {}):
        console.print(f"rank stage skipped: {metrics['rank']['skipped']}", highlight=False)
    elif "rank" in metrics:
        console.print(rank_table(metrics["rank"]))
        console.print(list_table(metrics["rank"]))
        findings = metrics["rank"].get("training", {}).get("health_findings", [])
        for finding in findings:
            console.print(f"[yellow]training health:[/yellow] {finding['message']}")
    if "rerank" in metrics:
        console.print(rerank_table(metrics["rerank"]))
    if "funnel" in metrics:
        console.print(funnel_table(metrics["funnel"]))
    console.print(timings_table(metrics))

"""The body of ``funnelrec compare RUN_A RUN_B``: read both runs (folders, or MLflow run ids
with ``--track-uri``), print the changed settings, guard decisions and metric table, and write
``--html OUT`` (docs/tracking.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from funnelrec.errors import FunnelrecError
from funnelrec.tracking.compare import Comparison, RunSnapshot, compare_runs, load_run_dir
from funnelrec.tracking.compare_render import GROUP_TITLES, grouped_rows, is_unchanged, write_html


def _load(arguments: tuple[str, str], uri: str | None) -> tuple[RunSnapshot, RunSnapshot]:
    """Folders as run folders; anything else as an MLflow run id when a store is named."""
    ids = [arg for arg in arguments if not Path(arg).exists()]
    if not ids or uri is None:
        # Without a store an argument can only be a folder: its error names what is wrong.
        a, b = (load_run_dir(Path(arg)) for arg in arguments)
        return a, b
    from funnelrec.config.tracking import TrackingConfig
    from funnelrec.tracking.compare import load_tracked_run
    from funnelrec.tracking.mlflow_store import MlflowTracker, store_target

    tracker = MlflowTracker(store_target(uri, TrackingConfig().experiment))
    with tempfile.TemporaryDirectory(prefix="funnelrec-compare-") as scratch:
        runs = [
            load_tracked_run(tracker, arg, Path(scratch)) if arg in ids else load_run_dir(Path(arg))
            for arg in arguments
        ]
    return runs[0], runs[1]


def _print(console: Console, comparison: Comparison) -> None:
    console.print(f"A: {comparison.a.label}\nB: {comparison.b.label}", highlight=False)
    if comparison.a.config is None or comparison.b.config is None:
        console.print("settings: not compared (no resolved config recorded for one run)")
    elif comparison.settings:
        table = Table(title="Changed settings", title_justify="left")
        for column in ("setting", "A", "B"):
            table.add_column(column)
        for key, va, vb in comparison.settings:
            table.add_row(key, "(absent)" if va is None else va, "(absent)" if vb is None else vb)
        console.print(table)
    else:
        console.print("settings: the same")
    changed = [(s, da, db) for s, da, db in comparison.guards if da != db]
    for stage, da, db in changed:
        console.print(f"guard {stage}: {da} in A, {db} in B", highlight=False)
    for group, rows in grouped_rows(comparison, changed_only=True).items():
        table = Table(title=GROUP_TITLES.get(group, group), title_justify="left")
        for i, column in enumerate(rows[0]):
            table.add_column(column, justify="left" if i == 0 else "right")
        for row in rows:
            style = "bold" if row["intervals overlap"] == "no" else None
            table.add_row(*row.values(), style=style)
        console.print(table)
    same = sum(is_unchanged(row) for row in comparison.metrics)
    console.print(
        f"{same} of {len(comparison.metrics)} metrics are the same in both runs (not shown; "
        "--html writes them all). Bold: the two runs' intervals do not overlap.",
        style="dim",
        highlight=False,
    )


def compare_command(
    console: Console,
    run_a: str,
    run_b: str,
    *,
    html: Path | None = None,
    uri: str | None = None,
    everything: bool = False,
) -> Comparison:
    """Read, compare, print and (with ``html``) write the page.

    Raises:
        FunnelrecError: a run that cannot be read (missing folder, no metrics.json, unknown
            run id), or the same run twice.
    """
    a, b = _load((run_a, run_b), uri)
    if run_a == run_b:
        raise FunnelrecError(f"compare: RUN_A and RUN_B are the same run ({run_a})")
    comparison = compare_runs(a, b, everything=everything)
    _print(console, comparison)
    if html is not None:
        console.print(f"wrote {write_html(comparison, html)}", highlight=False)
    return comparison


__all__ = ["compare_command"]

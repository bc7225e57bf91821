"""Helpers shared by the benchmark scripts: data sources, result tables, JSON output."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from funnelrec.data.convert import read_format
from funnelrec.data.convert.taobao import WINDOW as TAOBAO_WINDOW
from funnelrec.data.io import RawTables
from funnelrec.data.simulator import SimulatorConfig, simulate

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
# Wide enough for the result tables when output is piped (rich falls back to 80 columns).
console = Console(width=max(Console().width, 150))

SHARED_SETS = {
    "movielens-100k": ("movielens-100k", "movielens-100k"),
    "taobao": ("taobao-userbehavior-head", "taobao"),
    "mind": ("mind-small-sample", "mind"),
    "kuairand": ("kuairand-sample", "kuairand"),
    "kuairec": ("kuairec-head", "kuairec"),
}


def load_tables(
    name: str, sim_interactions: int = 1_000_000, seed: int = 0, *, positives_only: bool = False
) -> RawTables | None:
    """A named dataset as canonical tables; None (with a note) when ../shared is absent.

    For the simulator, ``positives_only`` makes ``sim_interactions`` count click/cart/order
    rows (a user x item matrix of that many interactions, no impression rows).
    """
    if name == "simulator":
        config = (
            SimulatorConfig.for_positives(sim_interactions, seed=seed)
            if positives_only
            else SimulatorConfig.for_interactions(sim_interactions, seed=seed)
        )
        sim = simulate(config)
        return RawTables(sim.interactions, sim.items, sim.users, ())
    folder, fmt = SHARED_SETS[name]
    path = SHARED_DATA / folder
    if not path.is_dir():
        console.print(f"[yellow]skip {name}: {path} not found[/yellow]")
        return None
    return read_format(fmt, path)


def taobao_in_window(tables: RawTables) -> tuple[RawTables, int]:
    """Taobao interactions inside the official 2017-11-25..12-03 window, and how many were
    dropped. A few events lie weeks before it; kept, they stretch the time span so that a
    temporal split's "last 10%" would hold out most of the log."""
    lo, hi = TAOBAO_WINDOW
    inside = tables.interactions.filter(pl.col("timestamp").is_between(lo, hi, closed="left"))
    return dataclasses.replace(tables, interactions=inside), tables.interactions.height - (
        inside.height
    )


def render(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col == columns[0] else "right")
    for row in rows:
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {path}")
    return path


def run_child(src: Path, script: str, args: list[str], what: str) -> Any:
    """``script --child ARGS`` in a fresh interpreter that imports ``funnelrec`` from ``src``
    (another checkout's, for side-by-side comparisons); the JSON its last stdout line holds."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, script, "--child", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} with {src} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])

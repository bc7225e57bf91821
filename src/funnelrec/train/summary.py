"""Read a run's health diagnostics back: :func:`summarise_run` and its rich rendering.

``funnelrec diagnose RUN_DIR`` is ``render_summary(summarise_run(RUN_DIR))``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from funnelrec.errors import DataError
from funnelrec.train.findings import Finding
from funnelrec.train.health import DIAGNOSTICS_FILE
from funnelrec.train.plots import PLOT_FILES


@dataclass(frozen=True, slots=True)
class LayerSummary:
    """Last-epoch health of one layer (a module owning parameters: nn.Linear, embedding,
    expert-bank layer...) and the activation it feeds (if any).

    Attributes:
        name: the layer's name, or the activation's when no watched layer runs before it.
        activation: the activation module fed by this layer (None for e.g. the output layer).
        kind: the activation's kind (``"relu"``...).
        dead_fraction / act_mean / act_std: of the activation's output (None without one).
        grad_norm: mean weight-gradient norm of the layer (None without one).
    """

    name: str
    activation: str | None
    kind: str | None
    dead_fraction: float | None
    act_mean: float | None
    act_std: float | None
    grad_norm: float | None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What :func:`summarise_run` read.

    Attributes:
        run_dir: the folder given.
        jsonl: the diagnostics file read.
        epochs / steps / skipped_steps / clipped_steps: totals of the run.
        clip_rate: clipped backward passes / all backward passes.
        final_loss: mean loss of the last epoch (None when unknown).
        completed: the file has its end record (False: training is running or crashed hard).
        error: the error that ended training, if any.
        layers: per layer, last epoch, in model order.
        findings: run-level findings (latest per kind and layer).
        plots: the PNG plots present beside the JSONL.
    """

    run_dir: Path
    jsonl: Path
    epochs: int
    steps: int
    skipped_steps: int
    clipped_steps: int
    clip_rate: float
    final_loss: float | None
    completed: bool
    error: str | None
    layers: tuple[LayerSummary, ...]
    findings: tuple[Finding, ...]
    plots: tuple[Path, ...]

    @property
    def healthy(self) -> bool:
        """No findings and no error."""
        return not self.findings and self.error is None


def _locate(run_dir: Path) -> Path:
    if not run_dir.exists():
        raise DataError("run directory not found", path=str(run_dir))
    if run_dir.is_file():
        return run_dir
    for candidate in (run_dir / DIAGNOSTICS_FILE, run_dir / "diagnostics" / DIAGNOSTICS_FILE):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"no {DIAGNOSTICS_FILE} here or in diagnostics/ (train with a HealthMonitor "
        "whose out_dir is this folder)",
        path=str(run_dir),
    )


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON records of a diagnostics file (blank lines ignored).

    Raises:
        DataError: a line is not a JSON object, or the file has no records.
    """
    records = []
    with path.open(encoding="utf-8") as fh:
        for row, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"not JSON ({e.msg})", path=str(path), row=row) from e
            if not isinstance(record, dict) or "type" not in record:
                raise DataError("not a diagnostics record", path=str(path), row=row)
            records.append(record)
    if not records:
        raise DataError("empty diagnostics file", path=str(path))
    return records


def _layers(epoch: dict[str, Any] | None) -> tuple[LayerSummary, ...]:
    if epoch is None:
        return ()
    acts: dict[str, dict[str, Any]] = epoch["activations"]
    grads: dict[str, dict[str, Any]] = epoch["layers"]
    fed = {a["input"]: name for name, a in acts.items() if a["input"] is not None}
    rows = []
    for name, grad in grads.items():
        act_name = fed.get(name)
        act = acts[act_name] if act_name is not None else None
        rows.append(_row(name, act_name, act, grad["grad_norm"]))
    for name, act in acts.items():
        if act["input"] is None or act["input"] not in grads:
            rows.append(_row(name, name, act, None))
    return tuple(rows)


def _row(
    name: str, act_name: str | None, act: dict[str, Any] | None, grad: float | None
) -> LayerSummary:
    return LayerSummary(
        name=name,
        activation=act_name,
        kind=act["kind"] if act else None,
        dead_fraction=act["dead_fraction"] if act else None,
        act_mean=act["mean"] if act else None,
        act_std=act["std"] if act else None,
        grad_norm=grad,
    )


def _findings(records: Sequence[dict[str, Any]], end: dict[str, Any] | None) -> list[Finding]:
    if end is not None:
        return [Finding.from_dict(f) for f in end["findings"]]
    latest: dict[tuple[str, str | None], Finding] = {}
    for record in records:
        if record["type"] == "epoch":
            for data in record["findings"]:
                finding = Finding.from_dict(data)
                layer = finding.layer if finding.kind == "dead_relu" else None
                latest[(finding.kind, layer)] = finding
    return list(latest.values())


def summarise_run(run_dir: Path | str) -> RunSummary:
    """Summarise the diagnostics a :class:`~funnelrec.train.health.HealthMonitor` wrote.

    Args:
        run_dir: the monitor's ``out_dir``, a folder holding ``diagnostics/`` with it, or the
            ``diagnostics.jsonl`` file itself.

    Returns:
        Totals, the last epoch's per-layer statistics and the findings.

    Raises:
        DataError: the folder does not exist, holds no diagnostics file, or the file is not
            diagnostics JSON lines (the CLI prints it as one line and exits with 2).

    Example:
        >>> summarise_run("/nonexistent/run")
        Traceback (most recent call last):
        ...
        funnelrec.errors.DataError: /nonexistent/run: run directory not found
    """
    run_dir = Path(run_dir)
    path = _locate(run_dir)
    records = read_records(path)
    try:
        epochs = [r for r in records if r["type"] == "epoch"]
        ends = [r for r in records if r["type"] == "end"]
        end = ends[-1] if ends else None
        last = epochs[-1] if epochs else None
        backward = sum(r["backward_steps"] for r in epochs)
        clipped = sum(r["clipped_steps"] for r in epochs)
        steps = end["steps"] if end else sum(r["steps"] for r in epochs)
        skipped = end["skipped_steps"] if end else sum(r["skipped_steps"] for r in epochs)
        layers = _layers(last)
        findings = _findings(records, end)
    except (KeyError, TypeError) as e:
        raise DataError(f"malformed diagnostics record ({e!r})", path=str(path)) from e
    loss = last["loss"] if last else None
    return RunSummary(
        run_dir=run_dir,
        jsonl=path,
        epochs=len([r for r in epochs if not r["partial"]]),
        steps=int(steps),
        skipped_steps=int(skipped),
        clipped_steps=int(clipped),
        clip_rate=clipped / backward if backward else 0.0,
        final_loss=loss if isinstance(loss, int | float) and math.isfinite(loss) else None,
        completed=end is not None,
        error=end["error"] if end else None,
        layers=layers,
        findings=tuple(findings),
        plots=tuple(path.parent / name for name in PLOT_FILES if (path.parent / name).is_file()),
    )


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_summary(summary: RunSummary) -> RenderableType:
    """A rich renderable (header, per-layer table, findings with remedies) for a console.

    Example:
        >>> import io
        >>> from rich.console import Console
        >>> s = RunSummary(Path("run"), Path("run/diagnostics.jsonl"), 2, 10, 0, 0, 0.0, 0.5,
        ...                True, None, (), (), ())
        >>> console = Console(width=100, file=io.StringIO(), record=True)
        >>> console.print(render_summary(s))
        >>> "No problems found." in console.export_text()
        True
    """
    status = "completed" if summary.completed else "incomplete (no end record)"
    if summary.error:
        status = f"failed: {summary.error}"
    header = Text.assemble(
        ("Run ", "bold"),
        (str(summary.run_dir), "bold cyan"),
        f"  {status}\n",
        f"epochs {summary.epochs}  steps {summary.steps}  skipped {summary.skipped_steps}  "
        f"clip rate {summary.clip_rate:.1%}  final loss {_f(summary.final_loss, '.4g')}",
    )
    table = Table(title="Layers (last epoch)", title_justify="left")
    table.add_column("layer")
    table.add_column("activation")
    table.add_column("dead", justify="right")
    table.add_column("act std", justify="right")
    table.add_column("grad norm", justify="right")
    for row in summary.layers:
        dead = _f(row.dead_fraction, ".0%")
        if row.dead_fraction is not None and row.dead_fraction > 0.5:
            dead = f"[bold red]{dead}[/bold red]"
        act = f"{row.activation} ({row.kind})" if row.activation else "-"
        table.add_row(row.name, act, dead, _f(row.act_std, ".3g"), _f(row.grad_norm, ".2e"))
    parts: list[RenderableType] = [header, table]
    if not summary.findings:
        parts.append(Text("No problems found.", style="bold green"))
    else:
        findings = Table(title="Findings", title_justify="left", show_lines=True)
        findings.add_column("finding")
        findings.add_column("problem", ratio=3)
        findings.add_column("remedy", ratio=2)
        order = sorted(summary.findings, key=lambda f: f.severity != "critical")
        for f in order:
            style = "bold red" if f.severity == "critical" else "yellow"
            remedy = Text(f.advice + "\n")
            remedy.append(json.dumps(f.remedy, sort_keys=True), style="dim")
            what = Text(f.severity, style=style)
            what.append(f"\n{f.kind}" + (f"\n{f.layer}" if f.layer else ""))
            findings.add_row(what, Text(f.message), remedy)
        parts.append(findings)
    if summary.plots:
        parts.append(Text("plots: " + "  ".join(str(p) for p in summary.plots), style="dim"))
    return Group(*parts)

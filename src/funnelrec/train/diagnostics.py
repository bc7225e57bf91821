"""Training-health diagnostics: the public entry point.

A :class:`HealthMonitor` is a loop :class:`~funnelrec.train.loop.Callback`: it records per
layer the dead-ReLU fraction, activation statistics and gradient norms, detects dead ReLUs and
vanishing/exploding gradients with plain-language :class:`Finding` s and machine-readable
remedies, and writes ``diagnostics.jsonl`` plus PNG plots. :func:`apply_remedy` turns the
findings into a retraining config (and re-initialised layers); :func:`summarise_run` reads a
run back (``funnelrec diagnose RUN_DIR``).

Implementation: :mod:`~funnelrec.train.health` (monitor and config),
:mod:`~funnelrec.train.findings` (rules and remedies), :mod:`~funnelrec.train.plots`,
:mod:`~funnelrec.train.summary`.

Example (a trainer wiring it in)::

    monitor = HealthMonitor(HealthConfig(out_dir=run_dir / "diagnostics", every_n_steps=10))
    train(model, task, batches, loop_config, callbacks=[monitor, EarlyStopping()])
    if monitor.findings:
        loop_config = apply_remedy(loop_config, model, monitor.findings)
        train(model, task, batches, loop_config, callbacks=[HealthMonitor(...)])
"""

from __future__ import annotations

from funnelrec.train.findings import (
    EpochStats,
    Finding,
    FindingKind,
    LayerActivity,
    Remedy,
    Severity,
    apply_remedy,
    detect_findings,
)
from funnelrec.train.health import DIAGNOSTICS_FILE, HealthConfig, HealthMonitor
from funnelrec.train.plots import PLOT_FILES, write_plots
from funnelrec.train.summary import (
    LayerSummary,
    RunSummary,
    read_records,
    render_summary,
    summarise_run,
)

__all__ = [
    "DIAGNOSTICS_FILE",
    "PLOT_FILES",
    "EpochStats",
    "Finding",
    "FindingKind",
    "HealthConfig",
    "HealthMonitor",
    "LayerActivity",
    "LayerSummary",
    "Remedy",
    "RunSummary",
    "Severity",
    "apply_remedy",
    "detect_findings",
    "read_records",
    "render_summary",
    "summarise_run",
    "write_plots",
]

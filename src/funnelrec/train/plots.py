"""PNG plots of a run's health records (the JSON records of ``HealthMonitor``).

Figures are drawn with :class:`matplotlib.figure.Figure` on the Agg canvas: no pyplot, no
global figure state, no display needed.

* ``loss_grad_norm.png``: loss and global pre-clip gradient norm (log) over the monitored steps,
  with the clipping threshold;
* ``layer_grad_norms.png``: each layer's weight-gradient norm (log) over the monitored steps;
* ``dead_fraction.png``: each activation layer's dead fraction and output std per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib loads when a plot is drawn, not with the package (serving)
    from matplotlib.figure import Figure

PLOT_FILES = ("loss_grad_norm.png", "layer_grad_norms.png", "dead_fraction.png")
_DASHES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "v", "D", "x")


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _positive(values: list[float]) -> list[float]:
    """Log axes cannot show 0/negatives: map them to NaN (a gap in the line)."""
    return [v if v > 0 else math.nan for v in values]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(fig: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    # fixed margins: a constrained/tight layout costs more than drawing the figure
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.09, top=0.92, hspace=0.08)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def _log_y(ax: Any) -> None:
    ax.set_yscale("log")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def write_plots(
    records: Sequence[Mapping[str, Any]],
    out_dir: Path,
    *,
    clip_grad_norm: float | None = None,
) -> list[Path]:
    """Write the three PNG plots of ``records`` into ``out_dir``.

    Args:
        records: the ``HealthMonitor`` records (``type`` = ``"step"`` / ``"epoch"`` used).
        out_dir: existing or new folder.
        clip_grad_norm: the clipping threshold drawn on the gradient-norm plot (None = none).

    Returns:
        The paths written, in :data:`PLOT_FILES` order.

    Example:
        >>> import tempfile
        >>> steps = [{"type": "step", "step": i, "loss": 1 / i, "grad_norm": 2.0,
        ...           "layers": {"fc": {"grad_norm": 0.5}}} for i in range(1, 4)]
        >>> epochs = [{"type": "epoch", "epoch": 0,
        ...            "activations": {"act": {"dead_fraction": 0.1, "std": 1.0}}}]
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     [p.name for p in write_plots(steps + epochs, Path(tmp))]
        ['loss_grad_norm.png', 'layer_grad_norms.png', 'dead_fraction.png']
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = [r for r in records if r.get("type") == "step"]
    epochs = [r for r in records if r.get("type") == "epoch"]
    figures = (
        _loss_grad_norm_figure(steps, clip_grad_norm),
        _layer_grad_norms_figure(steps),
        _activations_figure(epochs),
    )
    return [_save(fig, out_dir / name) for fig, name in zip(figures, PLOT_FILES, strict=True)]


def _loss_grad_norm_figure(
    steps: Sequence[Mapping[str, Any]], clip_grad_norm: float | None
) -> Figure:
    """Loss (top) and global pre-clip gradient norm, log scale, with the threshold (bottom)."""
    x = [_num(r["step"]) for r in steps]
    fig = _figure(8, 6)
    ax_loss, ax_norm = fig.subplots(2, 1, sharex=True)
    if steps:
        ax_loss.plot(x, [_num(r["loss"]) for r in steps], color="tab:blue")
        norms = _positive([_num(r["grad_norm"]) for r in steps])
        ax_norm.plot(x, norms, color="tab:red", label="global grad norm (pre-clip)")
        if clip_grad_norm is not None:
            ax_norm.axhline(clip_grad_norm, color="grey", linestyle="--", label="clip threshold")
        if any(math.isfinite(v) for v in norms):
            _log_y(ax_norm)
        ax_norm.legend(loc="best", fontsize="small")
    else:
        _empty(ax_loss, "no monitored steps")
    ax_loss.set_ylabel("loss")
    ax_norm.set_ylabel("grad norm")
    ax_norm.set_xlabel("step")
    fig.suptitle("Loss and gradient norm")
    return fig


def _layer_grad_norms_figure(steps: Sequence[Mapping[str, Any]]) -> Figure:
    """Each layer's weight-gradient norm over the steps (log scale; all-zero layers skipped)."""
    x = [_num(r["step"]) for r in steps]
    fig = _figure(8, 5)
    ax = fig.subplots()
    names = list(dict.fromkeys(name for r in steps for name in r.get("layers", {})))
    drawn = False
    for name in names:
        ys = _positive([_num(r.get("layers", {}).get(name, {}).get("grad_norm")) for r in steps])
        if any(math.isfinite(v) for v in ys):
            ax.plot(x, ys, label=name)
            drawn = True
    if drawn:
        _log_y(ax)
        ax.legend(loc="best", fontsize="small")
    else:
        _empty(ax, "no non-zero layer gradients")
    ax.set_xlabel("step")
    ax.set_ylabel("weight grad norm (pre-clip)")
    fig.suptitle("Per-layer gradient norms")
    return fig


def _activations_figure(epochs: Sequence[Mapping[str, Any]]) -> Figure:
    """Each activation layer's dead fraction (top) and output std (bottom) per epoch."""
    fig = _figure(8, 6)
    ax_dead, ax_std = fig.subplots(2, 1, sharex=True)
    ex = [_num(r["epoch"]) for r in epochs]
    acts = list(dict.fromkeys(name for r in epochs for name in r.get("activations", {})))
    for i, name in enumerate(acts):
        stats = [r.get("activations", {}).get(name, {}) for r in epochs]
        # distinct dashes and markers keep overlapping layers (e.g. all 100% dead) visible
        style = {"linestyle": _DASHES[i % len(_DASHES)], "marker": _MARKERS[i % len(_MARKERS)]}
        ax_dead.plot(ex, [_num(s.get("dead_fraction")) for s in stats], label=name, **style)
        ax_std.plot(ex, [_num(s.get("std")) for s in stats], label=name, **style)
    if acts:
        ax_dead.legend(loc="best", fontsize="small")
    else:
        _empty(ax_dead, "no ReLU-family activation modules")
    ax_dead.set_ylim(-0.02, 1.02)
    ax_dead.set_ylabel("dead fraction")
    ax_std.set_ylabel("activation std")
    ax_std.set_xlabel("epoch")
    fig.suptitle("Activations per layer and epoch")
    return fig

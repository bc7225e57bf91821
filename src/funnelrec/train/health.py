"""``HealthMonitor``: a loop callback that measures per-layer training health.

Per activation module of the ReLU family (``nn.ReLU``, ``LeakyReLU``, ``PReLU``, ``GELU``,
``SiLU``, ``ReLU6``) it records, through forward hooks on training-mode forwards:

* the **dead fraction**: units (last dimension) whose output was never > 0 during the epoch,
  from a running per-unit max over the batch dimensions (every step: a cheap reduction);
* the output **mean / std / fraction of zeros** (monitored steps only).

Per layer, i.e. every module that owns trainable parameters directly (``nn.Linear``,
embeddings, norms, batched expert layers of an ``ExpertBank``, attention units; see
:mod:`funnelrec.train.layers`), it records the **weight-gradient L2 norm** before clipping
(monitored steps only), and over every step the **global pre-clip gradient norm**, the **clip
rate** and the **skipped (NaN/inf) steps**. An activation after a batched layer (output
``[N, B, H]``) has one unit per member and width, so one dead expert shows. At each epoch end
it runs the rules of :mod:`funnelrec.train.findings`, logs each problem as a plain-language
warning with its remedy, and (with ``out_dir``) appends JSON lines to
``out_dir/diagnostics.jsonl``; at the end of training it writes PNG plots
(:mod:`funnelrec.train.plots`).

Each ``train`` call starts afresh (``diagnostics.jsonl`` is rewritten). An activation module
applied several times per forward (one shared ``nn.ReLU``) is tracked per call, as
``name``, ``name[1]``, ``name[2]``... Only activation *modules* are seen: ``F.relu`` inside a
``forward`` is invisible to the hooks.

"Monitored steps" are the 1st, (1 + n)th, (1 + 2n)th... step of each epoch for
``n = every_n_steps``; on the other steps the monitor costs one reduction per activation layer
and a few float additions.

Example:
    >>> import torch
    >>> from funnelrec.train.config import TrainLoopConfig
    >>> from funnelrec.train.loop import train
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> def task(outputs, batch):
    ...     return {"loss": ((outputs["y"] - batch["y"]) ** 2).mean()}
    >>> class Wrap(torch.nn.Module):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.net = model
    ...     def forward(self, batch):
    ...         return {"y": self.net(batch["x"]).squeeze(-1)}
    >>> g = torch.Generator().manual_seed(0)
    >>> data = [{"x": torch.randn(32, 4, generator=g), "y": torch.randn(32, generator=g)}]
    >>> monitor = HealthMonitor(HealthConfig(every_n_steps=1))
    >>> _ = train(Wrap(), task, lambda e: data, TrainLoopConfig(epochs=2), callbacks=[monitor])
    >>> sorted(monitor.epochs[-1].activations), sorted(monitor.epochs[-1].grad_norms)
    (['net.1'], ['net.0', 'net.2'])
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from funnelrec.train.config import Activation
from funnelrec.train.findings import EpochStats, Finding, LayerActivity, detect_findings
from funnelrec.train.layers import (
    grad_norms,
    member_count,
    parameterised_modules,
    passes_through,
    unit_max,
)
from funnelrec.train.loop import Callback, LoopState

logger = logging.getLogger(__name__)

DIAGNOSTICS_FILE = "diagnostics.jsonl"
FORMAT_VERSION = 1

#: Activation modules watched for dead units, with the init_linear name of each.
RELU_FAMILY_MODULES: tuple[tuple[type[nn.Module], Activation], ...] = (
    (nn.ReLU, "relu"),
    (nn.ReLU6, "relu"),
    (nn.LeakyReLU, "leaky_relu"),
    (nn.PReLU, "prelu"),
    (nn.GELU, "gelu"),
    (nn.SiLU, "silu"),
)


class HealthConfig(BaseModel):
    """Thresholds, sampling and output of :class:`HealthMonitor`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["health"] = "health"
    out_dir: Path | None = Field(
        None, description="Where diagnostics.jsonl and the PNG plots go (None = memory only)."
    )
    every_n_steps: int = Field(
        10, gt=0, description="Per-layer gradient norms and activation stats every n steps."
    )
    plots: bool = Field(True, description="Write PNG plots at the end (needs out_dir).")
    dead_fraction: float = Field(
        0.5, gt=0, le=1, description="Warn when more of a layer's units than this are dead."
    )
    vanishing_ratio: float = Field(
        1e-3, gt=0, description="Warn when a layer's grad norm < this x the largest layer's."
    )
    vanishing_norm: float = Field(
        1e-7, gt=0, description="Warn when every layer's grad norm is below this."
    )
    exploding_norm: float = Field(
        100.0, gt=0, description="Warn when the pre-clip global grad norm exceeds this."
    )
    growth_factor: float = Field(
        10.0, gt=1, description="Warn when the epoch mean grad norm grows this much..."
    )
    growth_min_norm: float = Field(1.0, ge=0, description="...and is above this.")
    remedy_lr_scale: float = Field(
        0.1, gt=0, lt=1, description="Remedies multiply the learning rate by this."
    )
    remedy_max_lr: float | None = Field(
        1e-2,
        gt=0,
        description="Remedies never suggest a learning rate above this (Adam's sane range "
        "tops out around 1e-2; None = no cap).",
    )
    remedy_clip_grad_norm: float = Field(1.0, gt=0, description="Remedies clip to this norm.")


def _activation_kind(module: nn.Module) -> Activation | None:
    for cls, name in RELU_FAMILY_MODULES:
        if isinstance(module, cls):
            return name
    return None


def _finite_or_none(value: Any) -> Any:
    """JSON-safe copy: NaN/inf floats become None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


class _EpochAccumulator:
    """Running sums of one epoch (reset at each epoch end)."""

    def __init__(self, skipped_before: int, clipped_before: int) -> None:
        self.skipped_before = skipped_before
        self.clipped_before = clipped_before
        self.steps = 0
        self.backward = 0
        self.loss_sum = 0.0
        self.norm_sum = 0.0
        self.norm_count = 0
        self.norm_max = -math.inf
        self.act_sums: dict[str, list[float]] = {}  # name -> [mean, std, zero_fraction, n]
        self.grad_sums: dict[str, list[float]] = {}  # name -> [sum, n]
        self.unit_max: dict[str, Tensor] = {}

    def touched(self, state: LoopState) -> bool:
        return bool(self.steps or self.backward or state.skipped_steps > self.skipped_before)


class HealthMonitor(Callback):
    """Per-layer health of a training run; see the module docstring.

    After (or during) ``train`` the results are on the instance:

    Attributes:
        config: the :class:`HealthConfig`.
        epochs: one :class:`~funnelrec.train.findings.EpochStats` per finished epoch (plus a
            ``partial`` one when training raised).
        findings: run-level findings, the latest occurrence of each problem: per layer for
            dead ReLUs, per kind for vanishing and exploding gradients.
        records: the JSON records (also written to ``out_dir/diagnostics.jsonl``).
        plots: paths of the PNG plots written at the end.

    Args:
        config: thresholds, ``every_n_steps`` and ``out_dir``.
    """

    def __init__(self, config: HealthConfig) -> None:
        self.config = config
        self._reset()

    # ----------------------------------------------------------------- state
    def _reset(self) -> None:
        self.epochs: list[EpochStats] = []
        self.findings: list[Finding] = []
        self.records: list[dict[str, Any]] = []
        self.plots: list[Path] = []
        self._latest: dict[tuple[str, str | None], Finding] = {}
        self._handles: list[RemovableHandle] = []
        self._order_handles: list[RemovableHandle] = []
        self._layers: dict[str, nn.Module] = {}  # every module owning trainable parameters
        self._linear: set[str] = set()  # the nn.Linear among them (remedies re-initialise)
        self._kinds: dict[str, Activation] = {}  # activation key -> kind
        self._inputs: dict[str, str | None] = {}  # activation key -> layer run just before it
        self._members: dict[str, int | None] = {}  # activation key -> N after a batched layer
        self._calls: dict[str, int] = {}
        self._last_layer: str | None = None
        self._sample = True
        self._act_sample: dict[str, Tensor] = {}
        self._grad_sample: Tensor | None = None
        self._acc = _EpochAccumulator(0, 0)
        self._pending: list[str] = []

    @property
    def jsonl_path(self) -> Path | None:
        """``out_dir/diagnostics.jsonl``, or None without ``out_dir``."""
        out = self.config.out_dir
        return None if out is None else out / DIAGNOSTICS_FILE

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self, state: LoopState, model: nn.Module) -> None:
        self._reset()
        self._acc = _EpochAccumulator(state.skipped_steps, state.clipped_steps)
        self._handles.append(model.register_forward_pre_hook(self._on_model_forward))
        self._layers = parameterised_modules(model)
        self._linear = {n for n, m in self._layers.items() if isinstance(m, nn.Linear)}
        activations: dict[str, str] = {}
        for name, module in model.named_modules():
            label = name or "<model>"
            # Frozen layers too: they still tell which layer feeds an activation.
            if any(True for _ in module.parameters(recurse=False)) and not passes_through(module):
                self._order_handles.append(
                    module.register_forward_hook(self._make_layer_hook(label))
                )
            kind = _activation_kind(module)
            if kind is not None:
                activations[label] = kind
                self._handles.append(module.register_forward_hook(self._make_act_hook(label, kind)))
        if not activations:
            logger.info("health monitor: no ReLU-family activation modules to watch")
        self._record(
            {
                "type": "begin",
                "version": FORMAT_VERSION,
                "health": self.config.model_dump(mode="json"),
                "loop": state.config.model_dump(mode="json") if state.config else None,
                "linear": [n for n in self._layers if n in self._linear],
                "layers": {n: type(m).__name__ for n, m in self._layers.items()},
                "activations": activations,
            }
        )
        path = self.jsonl_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
            self._flush()

    def _on_model_forward(self, module: nn.Module, args: Any) -> None:
        self._calls.clear()
        self._last_layer = None

    def _make_layer_hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if module.training:
                self._last_layer = name

        return hook

    def _make_act_hook(self, name: str, kind: Activation) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not module.training or not isinstance(output, Tensor) or output.numel() == 0:
                return
            # a module applied several times per forward (one shared nn.ReLU) is tracked per call
            call = self._calls.get(name, 0)
            self._calls[name] = call + 1
            key = name if call == 0 else f"{name}[{call}]"
            if key not in self._kinds:
                self._kinds[key] = kind
                self._inputs[key] = source = self._last_layer
                layer = self._layers.get(source) if source is not None else None
                self._members[key] = member_count(layer) if layer is not None else None
            top = unit_max(output, self._members[key])
            previous = self._acc.unit_max.get(key)
            if previous is not None and previous.shape == top.shape:
                top = torch.maximum(previous, top)
            self._acc.unit_max[key] = top
            if self._sample:
                values = output.detach().float()
                self._act_sample[key] = torch.stack(
                    (values.mean(), values.std(correction=0), (values == 0).float().mean())
                )

        return hook

    def on_after_backward(self, state: LoopState, model: nn.Module) -> None:
        if self._order_handles:  # the forward order (layer feeding each activation) is known
            for handle in self._order_handles:
                handle.remove()
            self._order_handles = []
        self._calls.clear()  # in case the loop's forward bypassed the model's own hooks
        acc = self._acc
        acc.backward += 1
        if math.isfinite(state.grad_norm):
            acc.norm_sum += state.grad_norm
            acc.norm_count += 1
            acc.norm_max = max(acc.norm_max, state.grad_norm)
        if self._sample and self._layers:
            # NaN = no gradient at all (layer unused this step), not a vanishing one
            self._grad_sample = grad_norms(self._layers)

    def on_step_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        acc = self._acc
        acc.steps += 1
        loss = metrics["loss"]
        acc.loss_sum += loss
        if self._sample:
            self._record_step(state, loss)
        self._sample = acc.steps % self.config.every_n_steps == 0

    def _record_step(self, state: LoopState, loss: float) -> None:
        acc = self._acc
        layers: dict[str, dict[str, float]] = {}
        if self._grad_sample is not None:
            for name, norm in zip(self._layers, self._grad_sample.tolist(), strict=True):
                layers[name] = {"grad_norm": norm}
                if not math.isfinite(norm):
                    continue
                sums = acc.grad_sums.setdefault(name, [0.0, 0.0])
                sums[0] += norm
                sums[1] += 1
        activations: dict[str, dict[str, float]] = {}
        for key, sample in self._act_sample.items():
            mean, std, zeros = sample.tolist()
            activations[key] = {"mean": mean, "std": std, "zero_fraction": zeros}
            sums = acc.act_sums.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            sums[0] += mean
            sums[1] += std
            sums[2] += zeros
            sums[3] += 1
        self._act_sample = {}
        self._grad_sample = None
        self._record(
            {
                "type": "step",
                "epoch": state.epoch,
                "step": state.step,
                "loss": loss,
                "grad_norm": state.grad_norm,
                "clipped": state.clipped,
                "layers": layers,
                "activations": activations,
            }
        )

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        self._close_epoch(state, metrics, partial=False)

    def on_train_end(self, state: LoopState, model: nn.Module) -> None:
        if self._acc.touched(state):
            self._close_epoch(state, {}, partial=True)
        for handle in [*self._handles, *self._order_handles]:
            handle.remove()
        self._handles, self._order_handles = [], []
        self._record(
            {
                "type": "end",
                "epochs": len(self.epochs),
                "steps": state.step,
                "skipped_steps": state.skipped_steps,
                "clipped_steps": state.clipped_steps,
                "error": state.error,
                "findings": [f.to_dict() for f in self.findings],
            }
        )
        self._flush()
        out = self.config.out_dir
        if out is not None and self.config.plots:
            from funnelrec.train.plots import write_plots

            clip = state.config.clip_grad_norm if state.config is not None else None
            self.plots = write_plots(self.records, out, clip_grad_norm=clip)

    # ------------------------------------------------------------- per epoch
    def _epoch_stats(self, state: LoopState, partial: bool) -> EpochStats:
        acc = self._acc
        activations = {}
        for key, top in acc.unit_max.items():
            sums = acc.act_sums.get(key)
            n = sums[3] if sums else 0.0
            mean, std, zeros = (s / n for s in sums[:3]) if sums and n else (math.nan,) * 3
            activations[key] = LayerActivity(
                kind=self._kinds[key],
                input_layer=self._inputs[key],
                units=int(top.numel()),
                dead_fraction=float((top <= 0).float().mean()),
                mean=mean,
                std=std,
                zero_fraction=zeros,
            )
        return EpochStats(
            epoch=state.epoch,
            steps=acc.steps,
            backward_steps=acc.backward,
            skipped_steps=state.skipped_steps - acc.skipped_before,
            clipped_steps=state.clipped_steps - acc.clipped_before,
            grad_norm_mean=acc.norm_sum / acc.norm_count if acc.norm_count else math.nan,
            grad_norm_max=acc.norm_max if acc.norm_count else math.nan,
            loss=acc.loss_sum / acc.steps if acc.steps else math.nan,
            activations=activations,
            grad_norms={name: s[0] / s[1] for name, s in acc.grad_sums.items() if s[1]},
            partial=partial,
        )

    def _reinit_layers(self) -> dict[str, Activation]:
        """Every trainable nn.Linear (what a remedy can re-initialise) -> the activation that
        follows it (``"linear"`` when none)."""
        follows: dict[str, Activation] = {}
        for key, source in self._inputs.items():
            if source is not None:
                follows.setdefault(source, self._kinds[key])
        return {name: follows.get(name, "linear") for name in self._layers if name in self._linear}

    def _close_epoch(self, state: LoopState, metrics: dict[str, float], partial: bool) -> None:
        stats = self._epoch_stats(state, partial)
        found = detect_findings(
            stats,
            self.epochs,
            self.config,
            loop=state.config,
            reinit_layers=self._reinit_layers(),
        )
        self.epochs.append(stats)
        for finding in found:
            key = (finding.kind, finding.layer if finding.kind == "dead_relu" else None)
            before = self._latest.get(key)
            # warn when a problem appears or gets worse, not again every epoch
            new = before is None or (before.severity, finding.severity) == ("warning", "critical")
            level = logging.WARNING if new else logging.DEBUG
            logger.log(level, "%s %s", finding.message, finding.advice)
            self._latest[key] = finding
        self.findings = list(self._latest.values())
        self._record(
            {
                "type": "epoch",
                "epoch": stats.epoch,
                "partial": partial,
                "metrics": dict(metrics),
                "steps": stats.steps,
                "backward_steps": stats.backward_steps,
                "skipped_steps": stats.skipped_steps,
                "clipped_steps": stats.clipped_steps,
                "clip_rate": stats.clip_rate,
                "loss": stats.loss,
                "grad_norm_mean": stats.grad_norm_mean,
                "grad_norm_max": stats.grad_norm_max,
                "activations": {
                    key: {
                        "kind": a.kind,
                        "input": a.input_layer,
                        "units": a.units,
                        "dead_fraction": a.dead_fraction,
                        "mean": a.mean,
                        "std": a.std,
                        "zero_fraction": a.zero_fraction,
                    }
                    for key, a in stats.activations.items()
                },
                "layers": {name: {"grad_norm": v} for name, v in stats.grad_norms.items()},
                "findings": [f.to_dict() for f in found],
            }
        )
        self._flush()
        self._acc = _EpochAccumulator(state.skipped_steps, state.clipped_steps)
        self._sample = True  # the first step of every epoch is monitored

    # ---------------------------------------------------------------- output
    def _record(self, record: dict[str, Any]) -> None:
        clean = _finite_or_none(record)
        self.records.append(clean)
        if self.config.out_dir is not None:
            self._pending.append(json.dumps(clean, allow_nan=False))

    def _flush(self) -> None:
        path = self.jsonl_path
        if path is None or not self._pending:
            return
        with path.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(self._pending) + "\n")
        self._pending = []

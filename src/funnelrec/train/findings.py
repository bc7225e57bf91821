"""Training-health findings: what went wrong, in plain language, and a remedy that can be run.

Pure functions over per-epoch statistics (:class:`EpochStats`, produced by
:class:`funnelrec.train.health.HealthMonitor`), so the rules are testable without training:

* **dead ReLUs**: more than ``dead_fraction`` of a layer's units never fired (output > 0) in an
  epoch. Remedy: re-initialise the layer feeding them (He, zero bias), lower the learning rate,
  avoid negative biases, or use LeakyReLU.
* **vanishing gradients**: a layer's weight-gradient norm is below ``vanishing_ratio`` times
  the largest layer's (the finding names the weakest), or every layer's is below
  ``vanishing_norm``. Layers are all modules owning parameters (``nn.Linear``, embeddings,
  norms, ``ExpertBank`` experts...), so a starved expert bank or tower is caught even when
  the input layers still learn through another path (an MMoE's gates). Remedy: He
  initialisation, normalised inputs, residual connections or normalisation layers.
* **exploding gradients**: NaN/inf loss or gradient (skipped steps), a pre-clip global gradient
  norm above ``exploding_norm``, or an epoch mean norm ``growth_factor`` times the smallest
  earlier one. Remedy: lower the learning rate, clip the gradient norm.

Every :class:`Finding` carries a machine-readable ``remedy`` dict (keys of :class:`Remedy`) and
:func:`apply_remedy` turns findings into a new loop config plus re-initialised layers.

Example:
    >>> import torch
    >>> from funnelrec.train.config import TrainLoopConfig
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> finding = Finding(
    ...     "exploding_gradients", None, "critical", "NaN loss", {"lr": 0.1, "clip_grad_norm": 1.0}
    ... )
    >>> config = apply_remedy(TrainLoopConfig(lr=1.0), model, [finding])
    >>> config.lr, config.clip_grad_norm
    (0.1, 1.0)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from funnelrec.train.config import Activation, TrainLoopConfig
from funnelrec.train.init import init_linear

if TYPE_CHECKING:
    from funnelrec.train.health import HealthConfig

logger = logging.getLogger(__name__)

FindingKind = Literal["dead_relu", "vanishing_gradients", "exploding_gradients"]
Severity = Literal["warning", "critical"]


class Remedy(BaseModel):
    """The machine-readable part of a finding (``Finding.remedy`` is its JSON dict).

    Only ``lr``, ``clip_grad_norm`` and ``layers`` (+ ``bias``) are applied by
    :func:`apply_remedy`; the rest is advice the caller acts on (logged when applying).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float | None = Field(None, gt=0, description="New (lower) learning rate.")
    lr_scale: float | None = Field(None, gt=0, description="Factor applied to get ``lr``.")
    clip_grad_norm: float | None = Field(None, gt=0, description="Clip the global norm to this.")
    reinit: Literal["he"] | None = Field(
        None, description="Re-initialise ``layers`` per activation (He for the ReLU family)."
    )
    layers: dict[str, Activation] = Field(
        default_factory=dict,
        description="nn.Linear name -> activation that follows it, for init_linear.",
    )
    bias: float = Field(0.0, description="Bias of the re-initialised layers.")
    activation: Activation | None = Field(None, description="Suggested activation instead.")
    normalize_inputs: bool = Field(False, description="Standardise the input features.")
    architecture: str | None = Field(None, description="Suggested architectural change.")


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected problem.

    Attributes:
        kind: ``"dead_relu"``, ``"vanishing_gradients"`` or ``"exploding_gradients"``.
        layer: module name (``model.named_modules()``) or None for the whole model.
        severity: ``"warning"`` or ``"critical"`` (training is not learning / diverged).
        message: what is wrong, in plain language, with the numbers that show it.
        remedy: machine-readable fix (keys of :class:`Remedy`), e.g.
            ``{"lr": 0.1, "clip_grad_norm": 1.0, "reinit": "he", "layers": {"net.0": "relu"}}``.
        advice: the fix in plain language.
        epoch: the epoch it was detected in.
    """

    kind: FindingKind
    layer: str | None
    severity: Severity
    message: str
    remedy: dict[str, Any] = field(default_factory=dict)
    advice: str = ""
    epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild a finding written by :meth:`to_dict` (unknown keys raise ``TypeError``)."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class LayerActivity:
    """Epoch statistics of one activation module's output.

    Attributes:
        kind: activation name (``"relu"``, ``"gelu"``...).
        input_layer: the layer (module owning parameters, not a norm) that ran just before
            it (its input), if any.
        units: width of the last (feature) dimension.
        dead_fraction: share of units whose output was never > 0 in the epoch.
        mean / std / zero_fraction: output mean, standard deviation and share of exact zeros,
            averaged over the monitored steps (NaN when none was monitored).
    """

    kind: Activation
    input_layer: str | None
    units: int
    dead_fraction: float
    mean: float
    std: float
    zero_fraction: float


@dataclass(frozen=True, slots=True)
class EpochStats:
    """What :class:`~funnelrec.train.health.HealthMonitor` measured in one epoch.

    Attributes:
        epoch: 0-based epoch.
        steps: optimizer steps taken.
        backward_steps: backward passes (steps taken + those skipped for a non-finite gradient).
        skipped_steps: steps skipped for a NaN/inf loss or gradient.
        clipped_steps: backward passes whose gradient norm exceeded the clipping threshold.
        grad_norm_mean / grad_norm_max: global pre-clip gradient norm over the finite backward
            passes (NaN when there was none).
        loss: mean loss of the steps taken (NaN when none).
        activations: per activation module, in forward order.
        grad_norms: per layer, i.e. module owning trainable parameters (registration order),
            mean weight-gradient L2 norm over the monitored steps.
        partial: the epoch was cut short (training raised).
    """

    epoch: int
    steps: int
    backward_steps: int
    skipped_steps: int
    clipped_steps: int
    grad_norm_mean: float
    grad_norm_max: float
    loss: float
    activations: dict[str, LayerActivity]
    grad_norms: dict[str, float]
    partial: bool = False

    @property
    def clip_rate(self) -> float:
        """Share of backward passes that were clipped."""
        return self.clipped_steps / self.backward_steps if self.backward_steps else 0.0


def _remedy_dict(remedy: Remedy) -> dict[str, Any]:
    """JSON dict of the fields that say something (no None, no empty layers, no False flag)."""
    out = remedy.model_dump(mode="json", exclude_none=True)
    if not out["layers"]:
        del out["layers"], out["bias"]
    if not out["normalize_inputs"]:
        del out["normalize_inputs"]
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _lower_lr(loop: TrainLoopConfig | None, config: HealthConfig) -> tuple[dict[str, Any], str]:
    """``lr * remedy_lr_scale``, capped at ``remedy_max_lr`` (the top of Adam's sane range)."""
    scale = config.remedy_lr_scale
    if loop is None:
        return {"lr_scale": scale}, f"lower the learning rate {1 / scale:g}x"
    new = loop.lr * scale
    if config.remedy_max_lr is not None:
        new = min(new, config.remedy_max_lr)
    text = f"lower the learning rate ({_fmt(loop.lr)} -> {_fmt(new)})"
    return {"lr": new, "lr_scale": new / loop.lr}, text


def _clip(loop: TrainLoopConfig | None, config: HealthConfig) -> float:
    current = loop.clip_grad_norm if loop is not None else None
    target = config.remedy_clip_grad_norm
    return target if current is None else min(current, target)


def _dead(
    stats: EpochStats,
    config: HealthConfig,
    loop: TrainLoopConfig | None,
    reinit_layers: Mapping[str, Activation],
) -> list[Finding]:
    out = []
    for name, act in stats.activations.items():
        if not act.dead_fraction > config.dead_fraction:
            continue
        lr, lr_text = _lower_lr(loop, config)
        # Only a layer apply_remedy can re-initialise (an nn.Linear) goes into the remedy.
        source = act.input_layer
        layers = {source: act.kind} if source is not None and source in reinit_layers else {}
        where = f"'{act.input_layer}'" if act.input_layer else "the layer feeding them"
        remedy = Remedy(reinit="he", layers=layers, bias=0.0, activation="leaky_relu", **lr)
        out.append(
            Finding(
                kind="dead_relu",
                layer=name,
                severity="critical" if act.dead_fraction >= 0.9 else "warning",
                message=(
                    f"{act.dead_fraction:.0%} of the {act.units} units of '{name}' ({act.kind}) "
                    f"never fired in epoch {stats.epoch}: they output zero for every input, pass "
                    "no gradient back and have stopped learning (dead ReLUs)."
                ),
                remedy=_remedy_dict(remedy),
                advice=(
                    f"Re-initialise {where} (He init, zero bias), {lr_text}, avoid negative "
                    "biases before ReLUs, or switch to LeakyReLU."
                ),
                epoch=stats.epoch,
            )
        )
    return out


def _vanishing(
    stats: EpochStats,
    config: HealthConfig,
    reinit_layers: Mapping[str, Activation],
) -> list[Finding]:
    norms = {k: v for k, v in stats.grad_norms.items() if math.isfinite(v)}
    if not norms:
        return []
    top = max(norms, key=norms.__getitem__)
    weakest = min(norms, key=norms.__getitem__)
    largest, smallest = norms[top], norms[weakest]
    layer: str | None
    severity: Severity
    if largest < config.vanishing_norm:
        layer, severity = None, "critical"
        message = (
            f"Gradients vanished in epoch {stats.epoch}: every layer's weight-gradient norm is "
            f"below {config.vanishing_norm:g} (largest {largest:.2e}), so no weight is learning."
        )
    elif smallest < config.vanishing_ratio * largest:
        layer, severity = weakest, "warning"
        starved = sum(v < config.vanishing_ratio * largest for v in norms.values())
        message = (
            f"Gradients vanish in epoch {stats.epoch}: layer '{weakest}' gets a gradient norm "
            f"of {smallest:.2e}, {smallest / largest:.1e} times that of '{top}' "
            f"({largest:.2e}); {starved} of {len(norms)} layers are below "
            f"{config.vanishing_ratio:g} times the largest and barely learn."
        )
    else:
        return []
    remedy = Remedy(
        reinit="he",
        layers=dict(reinit_layers),
        bias=0.0,
        normalize_inputs=True,
        architecture="residual connections or batch/layer normalisation",
    )
    return [
        Finding(
            kind="vanishing_gradients",
            layer=layer,
            severity=severity,
            message=message,
            remedy=_remedy_dict(remedy),
            advice=(
                "Re-initialise the layers per activation (He for ReLUs) with zero biases, "
                "normalise the inputs (zero mean, unit variance), and consider residual "
                "connections or batch/layer normalisation."
            ),
            epoch=stats.epoch,
        )
    ]


def _exploding(
    stats: EpochStats,
    history: Sequence[EpochStats],
    config: HealthConfig,
    loop: TrainLoopConfig | None,
) -> list[Finding]:
    evidence: list[str] = []
    critical = False
    if stats.skipped_steps:
        critical = True
        evidence.append(
            f"the loss or the gradient was NaN/inf on {stats.skipped_steps} step(s), which "
            "were skipped"
        )
    if math.isfinite(stats.grad_norm_max) and stats.grad_norm_max > config.exploding_norm:
        critical = critical or stats.grad_norm_max > 10 * config.exploding_norm
        evidence.append(
            f"the gradient norm before clipping reached {stats.grad_norm_max:.3g} "
            f"(threshold {config.exploding_norm:g})"
        )
    earlier = [h.grad_norm_mean for h in history if math.isfinite(h.grad_norm_mean)]
    earlier = [x for x in earlier if x > 0]
    if (
        earlier
        and math.isfinite(stats.grad_norm_mean)
        and stats.grad_norm_mean > config.growth_min_norm
        and stats.grad_norm_mean > config.growth_factor * min(earlier)
    ):
        evidence.append(
            f"the mean gradient norm grew {stats.grad_norm_mean / min(earlier):.3g}x "
            f"over earlier epochs (to {stats.grad_norm_mean:.3g})"
        )
    if not evidence:
        return []
    lr, lr_text = _lower_lr(loop, config)
    clip = _clip(loop, config)
    remedy = Remedy(clip_grad_norm=clip, **lr)
    return [
        Finding(
            kind="exploding_gradients",
            layer=None,
            severity="critical" if critical else "warning",
            message=f"Gradients are exploding in epoch {stats.epoch}: " + "; ".join(evidence) + ".",
            remedy=_remedy_dict(remedy),
            advice=f"{lr_text.capitalize()} and clip the gradient norm (clip_grad_norm={clip:g}).",
            epoch=stats.epoch,
        )
    ]


def detect_findings(
    stats: EpochStats,
    history: Sequence[EpochStats],
    config: HealthConfig,
    *,
    loop: TrainLoopConfig | None = None,
    reinit_layers: Mapping[str, Activation] | None = None,
) -> list[Finding]:
    """The findings for one epoch.

    Args:
        stats: this epoch's statistics.
        history: the earlier epochs (for the growth rule).
        config: thresholds and remedy settings.
        loop: the loop config being run (to state the remedy's absolute learning rate).
        reinit_layers: the layers a remedy may re-initialise (every nn.Linear) -> the
            activation following it: all of them in the vanishing-gradient remedy, the one
            feeding a dead activation in its remedy (default: the grad-norm layers as
            ``"relu"``).

    Returns:
        Dead-ReLU findings (one per layer), then vanishing, then exploding (at most one each).
    """
    if reinit_layers is None:
        reinit_layers = {name: "relu" for name in stats.grad_norms}
    return [
        *_dead(stats, config, loop, reinit_layers),
        *_vanishing(stats, config, reinit_layers),
        *_exploding(stats, history, config, loop),
    ]


def apply_remedy(
    config: TrainLoopConfig, model: nn.Module, findings: Sequence[Finding]
) -> TrainLoopConfig:
    """Apply the findings' remedies: re-initialise layers in place, return the new loop config.

    Re-initialises each named nn.Linear with :func:`~funnelrec.train.init.init_linear` for the
    activation that follows it (He for the ReLU family, Xavier otherwise) and the remedy's bias
    (0); takes the lowest remedy learning rate (never raising ``config.lr``) and the tightest
    clipping. Advice that needs the caller (normalise inputs, switch activation, architecture)
    is logged. Findings without a remedy change nothing.

    Args:
        config: the loop config of the failed run.
        model: the trained model, modified in place.
        findings: e.g. ``HealthMonitor.findings``.

    Returns:
        The loop config to retrain with (a new optimizer is built by the next ``train`` call).

    Raises:
        ValueError: a remedy has unknown keys or names a layer that is not an nn.Linear of
            ``model``.
    """
    remedies = [Remedy.model_validate(f.remedy) for f in findings]
    lr = config.lr
    clip = config.clip_grad_norm
    reinit: dict[str, tuple[Activation, float]] = {}
    for remedy in remedies:
        if remedy.lr is not None:
            lr = min(lr, remedy.lr)
        elif remedy.lr_scale is not None:
            lr = min(lr, config.lr * remedy.lr_scale)
        if remedy.clip_grad_norm is not None:
            clip = remedy.clip_grad_norm if clip is None else min(clip, remedy.clip_grad_norm)
        for name, activation in remedy.layers.items():
            reinit[name] = (activation, remedy.bias)
        advice = {
            "activation": remedy.activation,
            "normalize_inputs": remedy.normalize_inputs or None,
            "architecture": remedy.architecture,
        }
        for key, value in advice.items():
            if value is not None:
                logger.info("remedy advice not applied automatically: %s=%s", key, value)
    for name, (activation, bias) in reinit.items():
        try:
            layer = model.get_submodule(name)
        except AttributeError as e:
            raise ValueError(f"remedy names layer '{name}', which the model does not have") from e
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"remedy names layer '{name}', a {type(layer).__name__}, not Linear")
        init_linear(layer, activation, bias=bias)
        logger.info("re-initialised '%s' for %s (bias %g)", name, activation, bias)
    if lr != config.lr or clip != config.clip_grad_norm:
        logger.info(
            "remedy: lr %g -> %g, clip_grad_norm %s -> %s",
            config.lr,
            lr,
            config.clip_grad_norm,
            clip,
        )
    return TrainLoopConfig.model_validate(config.model_dump() | {"lr": lr, "clip_grad_norm": clip})

"""The heavy ranker's lean inference path: its network exported to ONNX when the artifact is
saved and run by ONNX Runtime on one intra-op thread when it is loaded.

A served request scores ~100 candidates, where PyTorch's per-operator dispatch is a large part
of the forward: measured by ``benchmarks/ranker_inference.py`` on the serving artifact's MMoE
(one thread), ONNX Runtime took x0.67 of eager PyTorch's CPU time at 100 candidates and x0.84
at 500, while TorchScript took x0.92-0.99. So ONNX Runtime is the lean path, and TorchScript is
not used.

Only networks that read the ``sparse`` and ``dense`` inputs alone are exported (MMoE, PLE,
Shared-Bottom, ESMM, DeepFM, DCN, STAR); the sequence models keep eager PyTorch, where the
behaviour cache (:mod:`funnelrec.rank.behaviour_cache`) is their fast path. An export is kept
only when ONNX Runtime reproduces the eager logits on a probe batch to :data:`ATOL`; the
artifact's golden self-check then compares the served scores with the ones recorded at save
time, so a lean path that drifted would refuse to serve.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from funnelrec.features.spec import FeatureSpec

if TYPE_CHECKING:
    import onnxruntime

logger = logging.getLogger(__name__)

LEAN_INPUTS = ("sparse", "dense")
"""The batch keys an exported network reads."""
PROBE_ROWS = 64
"""Rows of the random batch an export is checked on."""
ATOL = 1e-4
"""Largest logit difference between ONNX Runtime and eager PyTorch that an export may show."""


class _Positional(nn.Module):
    """The network with positional tensor inputs and a tuple of task logits: the form the
    ONNX exporter traces."""

    def __init__(self, network: nn.Module, tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.network = network
        self.tasks = tasks

    def forward(self, sparse: Tensor, dense: Tensor) -> tuple[Tensor, ...]:
        logits = self.network({"sparse": sparse, "dense": dense})
        return tuple(logits[task] for task in self.tasks)


def probe_batch(spec: FeatureSpec, rows: int = PROBE_ROWS) -> dict[str, Tensor]:
    """A reproducible random batch of valid codes and dense values for ``spec``."""
    generator = torch.Generator().manual_seed(0)
    codes = [
        torch.randint(0, max(c, 1), (rows,), generator=generator) for c in spec.sparse_cardinalities
    ]
    return {
        "sparse": torch.stack(codes, 1),
        "dense": torch.randn(rows, spec.n_dense, generator=generator),
    }


def export_onnx(
    network: nn.Module, spec: FeatureSpec, tasks: tuple[str, ...]
) -> tuple[bytes | None, str]:
    """The network as an ONNX model and ``"onnxruntime"``, or None and why it is not.

    The network is put in eval mode (what it serves in)."""
    if not _has_onnxruntime():
        return None, "onnxruntime is not installed"
    network.eval()
    probe = probe_batch(spec)
    try:
        with torch.no_grad():
            expected = network(probe)
    except KeyError as missing:  # it reads behaviour sequences: the eager path serves it
        return None, f"the network reads {missing} besides {', '.join(LEAN_INPUTS)}"
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():  # the tracer's notes on Python-level shape checks
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Positional(network, tasks).eval(),
                (probe["sparse"], probe["dense"]),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter takes a file object
                dynamo=False,  # the dynamo exporter refuses the models' input checks
                input_names=list(LEAN_INPUTS),
                output_names=list(tasks),
                dynamic_axes={name: {0: "rows"} for name in (*LEAN_INPUTS, *tasks)},
            )
    except Exception as error:  # any exporter failure means: serve eager
        return None, f"ONNX export failed: {type(error).__name__}: {str(error)[:200]}"
    model = buffer.getvalue()
    lean = OnnxForward(model, tasks)
    got = lean(probe)
    worst = max(float((got[t] - expected[t].float()).abs().max()) for t in tasks)
    if not worst <= ATOL:
        return None, f"ONNX Runtime differs from PyTorch by {worst:.2e} on a probe batch"
    return model, "onnxruntime"


class OnnxForward:
    """An exported network under ONNX Runtime: ``batch -> {task: logit tensor}``, like the
    network's own forward, on one intra-op thread (a served worker's one core)."""

    def __init__(self, model: bytes, tasks: tuple[str, ...]) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        self.tasks = tasks

    def __call__(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        feed: dict[str, Any] = {
            "sparse": batch["sparse"].numpy().astype(np.int64, copy=False),
            "dense": batch["dense"].numpy().astype(np.float32, copy=False),
        }
        outputs = self.session.run(list(self.tasks), feed)
        return {task: torch.from_numpy(out) for task, out in zip(self.tasks, outputs, strict=True)}


def load_lean(model: bytes, tasks: tuple[str, ...]) -> OnnxForward | None:
    """The saved export under ONNX Runtime, or None (and a warning) when it cannot run here."""
    if not _has_onnxruntime():
        logger.warning("the ranker's ONNX export is not used: onnxruntime is not installed")
        return None
    return OnnxForward(model, tasks)


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True

"""The heavy ranker's request-shared form: a served request is one user's candidates at one
time, so every input that describes only the user or the moment (the user id, the user's
attributes, hour, weekday and the ``u_*`` statistics) is the same in all ~100 rows.

An MMoE's first expert layer and its gates are linear in the flat input, so they split into a
part over those shared columns, computed once per request, and a part over the columns that
vary with the candidate: ``x W = x_shared W_shared + x_varying W_varying``. On the serving
artifact (``benchmarks/serving_artifact.py``: 185 input dims, 103 of them shared) that is a
third of the experts' multiply-adds, and the shared fields are embedded once instead of per
row. This is the industrial "user-side computation sharing" of request-level ranking; it is
exact up to float summation order (the export is checked against eager PyTorch on a probe
batch, like the full export, and the artifact's golden self-check compares served scores).

The form is exported to ONNX next to the full network (:mod:`funnelrec.rank.lean`), taking the
same ``sparse`` and ``dense`` inputs: it reads the shared columns from row 0. So it may only
run on a batch whose shared columns really are equal in every row; :class:`SharedForward`
checks that on every call and otherwise leaves the batch to the full network (a batch of many
users, as offline evaluation scores, never takes it).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.lean import ATOL, LEAN_INPUTS, OnnxForward, probe_batch
from funnelrec.rank.models.mmoe import MMoE
from funnelrec.rank.modules.moe import ExpertBank, mix

if TYPE_CHECKING:
    from funnelrec.rank.modules.moe import _BankLayer


@dataclass(frozen=True)
class SharedColumns:
    """The input columns that one request's rows share: ``sparse`` field and ``dense``
    column indices (sorted, non-empty between them)."""

    sparse: tuple[int, ...]
    dense: tuple[int, ...]

    def holds_for(self, sparse: NDArray[np.integer], dense: NDArray[np.floating]) -> bool:
        """Whether every row of the batch has row 0's values in the shared columns."""
        if sparse.shape[0] == 0:
            return False
        head_s = sparse[:1, self.sparse]
        head_d = dense[:1, self.dense]
        return bool((sparse[:, self.sparse] == head_s).all()) and bool(
            (dense[:, self.dense] == head_d).all()
        )

    def state(self) -> dict[str, NDArray[np.int64]]:
        return {
            "shared_sparse": np.asarray(self.sparse, dtype=np.int64),
            "shared_dense": np.asarray(self.dense, dtype=np.int64),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, NDArray]) -> SharedColumns:
        return cls(
            tuple(int(i) for i in state["shared_sparse"]),
            tuple(int(i) for i in state["shared_dense"]),
        )


class _SharedMMoE(nn.Module):
    """An MMoE evaluated with its first expert layer and its gates split into a shared and a
    varying part (positional ``sparse, dense`` in, a tuple of task logits out)."""

    offsets: Tensor

    def __init__(
        self, network: MMoE, spec: FeatureSpec, shared: SharedColumns, tasks: tuple[str, ...]
    ) -> None:
        super().__init__()
        embedding = network.input.embedding
        dim = embedding.dim
        n_fields = spec.n_sparse
        self.shared_fields = list(shared.sparse)
        self.varying_fields = [f for f in range(n_fields) if f not in shared.sparse]
        self.shared_dense = list(shared.dense)
        self.varying_dense = [d for d in range(spec.n_dense) if d not in shared.dense]

        def flat_columns(fields: list[int], dense: list[int]) -> list[int]:
            """Columns of the flat input ``[fields x E | dense]`` for these fields/columns."""
            return [f * dim + e for f in fields for e in range(dim)] + [
                n_fields * dim + d for d in dense
            ]

        self.shared_at = flat_columns(self.shared_fields, self.shared_dense)
        self.varying_at = flat_columns(self.varying_fields, self.varying_dense)
        self.table = embedding.table.weight.detach()
        self.register_buffer("offsets", embedding.offsets.clone(), persistent=False)
        self.experts_first, self.experts_rest = self._split(network.experts)
        self.gates_first, self.gates_rest = self._split(network.gates)
        self.towers = network.towers
        self.tasks = tasks

    def _split(self, bank: ExpertBank) -> tuple[tuple[Tensor, Tensor, Tensor], nn.Module]:
        """The bank's first layer as (shared weight, varying weight, bias) and the rest."""
        first: _BankLayer = bank.layers[0]  # type: ignore[assignment]
        weight = first.weight.detach()
        parts = (
            weight[:, self.shared_at, :].contiguous(),
            weight[:, self.varying_at, :].contiguous(),
            first.bias.detach().unsqueeze(1),
        )
        return parts, nn.Sequential(*list(bank.layers)[1:])

    def _embed(self, codes: Tensor, fields: list[int]) -> Tensor:
        index = codes[:, fields] + self.offsets[fields]
        return nn.functional.embedding(index, self.table).flatten(1)

    def forward(self, sparse: Tensor, dense: Tensor) -> tuple[Tensor, ...]:
        shared = torch.cat(
            [self._embed(sparse[:1], self.shared_fields), dense[:1, self.shared_dense]], 1
        )  # [1, shared dims]
        varying = torch.cat(
            [self._embed(sparse, self.varying_fields), dense[:, self.varying_dense]], 1
        )  # [B, varying dims]
        experts = self.experts_rest(_first_layer(self.experts_first, shared, varying))
        gates = self.gates_rest(_first_layer(self.gates_first, shared, varying)).softmax(-1)
        logits = self.towers(mix(gates, experts)).squeeze(-1)  # [T, B]
        return tuple(logits[t] for t in range(len(self.tasks)))


def _first_layer(parts: tuple[Tensor, Tensor, Tensor], shared: Tensor, varying: Tensor) -> Tensor:
    """``[N, B, out]``: ``varying @ W_varying + (shared @ W_shared + bias)``, the shared term
    computed for one row and broadcast."""
    w_shared, w_varying, bias = parts
    return torch.matmul(varying, w_varying) + (torch.matmul(shared, w_shared) + bias)


def export_shared(
    network: nn.Module, spec: FeatureSpec, tasks: tuple[str, ...], shared: SharedColumns
) -> tuple[bytes | None, str]:
    """The request-shared form as an ONNX model and ``"onnxruntime"``, or None and why not:
    only an MMoE with shared columns has one, and only when ONNX Runtime reproduces the eager
    network on a probe batch whose shared columns are equal."""
    if not isinstance(network, MMoE) or network.input.pool:
        return None, "only an MMoE without pooled behaviours has a request-shared form"
    if not shared.sparse and not shared.dense:
        return None, "the features have no request-shared columns"
    network.eval()
    probe = probe_batch(spec)
    probe["sparse"][:, list(shared.sparse)] = probe["sparse"][:1, list(shared.sparse)]
    probe["dense"][:, list(shared.dense)] = probe["dense"][:1, list(shared.dense)]
    with torch.no_grad():
        expected = network(probe)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():  # the tracer's notes on Python-level shape checks
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _SharedMMoE(network, spec, shared, tasks).eval(),
                (probe["sparse"], probe["dense"]),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter takes a file object
                dynamo=False,
                input_names=list(LEAN_INPUTS),
                output_names=list(tasks),
                dynamic_axes={name: {0: "rows"} for name in (*LEAN_INPUTS, *tasks)},
            )
    except Exception as error:  # any exporter failure means: the full export serves
        return None, f"ONNX export failed: {type(error).__name__}: {str(error)[:200]}"
    model = buffer.getvalue()
    got = OnnxForward(model, tasks)(probe)
    worst = max(float((got[t] - expected[t].float()).abs().max()) for t in tasks)
    if not worst <= ATOL:
        return None, f"ONNX Runtime differs from PyTorch by {worst:.2e} on a probe batch"
    return model, "onnxruntime"


class SharedForward:
    """The full network's lean forward, taking the request-shared form for a batch whose
    shared columns are equal in every row."""

    def __init__(self, full: OnnxForward, shared: OnnxForward, columns: SharedColumns) -> None:
        self.full = full
        self.shared = shared
        self.columns = columns

    def __call__(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        sparse, dense = batch["sparse"].numpy(), batch["dense"].numpy()
        if sparse.shape[0] > 1 and self.columns.holds_for(sparse, dense):
            return self.shared(batch)
        return self.full(batch)


@dataclass(frozen=True)
class SharedExport:
    """The request-shared form's ONNX model and the columns it reads from row 0."""

    model: bytes
    columns: SharedColumns

    @classmethod
    def make(
        cls,
        network: nn.Module,
        spec: FeatureSpec,
        tasks: tuple[str, ...],
        shared_names: tuple[tuple[str, ...], tuple[str, ...]],
    ) -> tuple[SharedExport | None, str]:
        """The export for the ``(sparse fields, dense features)`` named shared, or None and
        why there is none. Names the spec does not hold are left out."""
        fields, dense = shared_names
        columns = SharedColumns(
            tuple(i for i, name in enumerate(spec.sparse_names) if name in fields),
            tuple(i for i, name in enumerate(spec.dense_names) if name in dense),
        )
        model, outcome = export_shared(network, spec, tasks, columns)
        return (None if model is None else cls(model, columns)), outcome

    def state(self) -> dict[str, NDArray]:
        return {"onnx_shared": np.frombuffer(self.model, dtype=np.uint8), **self.columns.state()}

    @classmethod
    def from_state(cls, state: Mapping[str, NDArray]) -> SharedExport | None:
        """The export saved in ``state``, or None when it holds none."""
        if "onnx_shared" not in state:
            return None
        return cls(bytes(state["onnx_shared"]), SharedColumns.from_state(state))

    def forward(self, full: OnnxForward) -> SharedForward:
        """``full`` with this form for the batches it fits."""
        return SharedForward(full, OnnxForward(self.model, full.tasks), self.columns)

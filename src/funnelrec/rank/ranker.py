"""The ranking stage: point-in-time features -> a per-task model -> calibrated probabilities
(or ranking scores) -> one fused score per candidate.

A :class:`Ranker` owns the fitted featurizer (:class:`PointInTimeFeatures`), one model (a
neural multi-task model trained by the one training loop, or independent LightGBM boosters)
and the fusion formula. It reads Samples (``query_id, user_idx, item_idx, timestamp``; labels
only when training) plus the interaction log the features may look at, and returns the Scores
table: the samples with ``p_<task>`` and ``score``.

``p_<task>`` are probabilities for the pointwise objectives (BCE, LightGBM ``binary``); with
a list objective (``rank.train.loss="listwise"``, LightGBM ``objective="lambdarank"``) they
are ``sigmoid(ranking score)``: in ``[0, 1]`` and monotone in the score, so fusion still
works, but not calibrated probabilities (:attr:`RankConfig.outputs_probabilities`).

Example:
    >>> ranker = Ranker(RankConfig(model={"kind": "deepfm"}), ("click",))
    >>> ranker.tasks, ranker.is_neural
    (('click',), True)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray

from funnelrec.data.frames import float32_series
from funnelrec.data.state import prefixed
from funnelrec.errors import ConfigError
from funnelrec.features.pit import PointInTimeFeatures, PreparedLog
from funnelrec.features.scenario import ScenarioVocab
from funnelrec.features.semantic_ids.fields import SemanticItemFields
from funnelrec.features.spec import FeatureSpec, RankFeatures
from funnelrec.rank.batches import Batch, BatchTable
from funnelrec.rank.behaviour_cache import BehaviourCache, one_sequence, projects_behaviours
from funnelrec.rank.calibration import (
    IsotonicCalibrator,
    calibrators_from_state,
    calibrators_state,
    correct_task_probabilities,
)
from funnelrec.rank.config import RankConfig, check_objective
from funnelrec.rank.duration import with_sample_weights
from funnelrec.rank.fusion import FusionConfig, FusionTarget, fuse, search_fusion
from funnelrec.rank.gbdt import LightGBMConfig, LightGBMRanker
from funnelrec.rank.lean import OnnxForward, export_onnx, load_lean
from funnelrec.rank.lean_shared import SharedExport, SharedForward
from funnelrec.rank.listwise import QUERY_KEY, query_batches
from funnelrec.rank.models import RankModelConfig, build_rank_model
from funnelrec.rank.models.base import GatedRankModel
from funnelrec.rank.samples import negative_keep_rate
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig
from funnelrec.train.diagnostics import HealthConfig, HealthMonitor
from funnelrec.train.distributed import is_distributed, is_main_process
from funnelrec.train.loop import EarlyStopping, KeepBest, resolve_device, train

logger = logging.getLogger(__name__)

PREPARED_MAX_SAMPLES = 20_000
"""Requests up to this many samples read a prepared index of a repeatedly used log; bigger
batches do too when the log is longer than the batch (below that they sort their own rows,
which is cheaper than gathering per user)."""


class Ranker:
    """A fitted ranking stage (see the module docstring)."""

    def __init__(self, config: RankConfig, tasks: tuple[str, ...]) -> None:
        if not tasks:
            raise ValueError("a ranker needs at least one task")
        self.config = config
        self.tasks = tuple(tasks)
        self.features: PointInTimeFeatures | None = None
        self.scenarios: ScenarioVocab | None = None  # the scenario field (config.uses_scenario)
        self.semantic: SemanticItemFields | None = None  # sid_* item fields (semantic_ids)
        self.network: torch.nn.Module | None = None
        self.boosters: LightGBMRanker | None = None
        self.fusion_config: FusionConfig = config.fusion.formula or FusionConfig(
            kind="weighted_sum", weights={t: 1.0 for t in self.tasks}
        )
        self.stats: dict = {}
        self.keep_rate = 1.0  # share of negatives max_negatives_per_query kept at training
        self.calibrators: dict[str, IsotonicCalibrator] = {}  # rank.train.calibration
        self._device = resolve_device(config.train.device)
        # The last plain log scored against, and its index once seen twice (see _log_for).
        self._log_seen: tuple[pl.DataFrame, PreparedLog | None] | None = None
        # Served requests of a long-sequence model: its behaviour side per user sequence.
        self.behaviour_cache = BehaviourCache(config.serve.behaviour_cache_mb << 20)
        # The lean inference path (rank/lean.py, rank.serve.runtime): the network's ONNX
        # export, made once when the ranker is first saved, and run after it is loaded.
        # With it, an MMoE's request-shared form (rank/lean_shared.py) for one user's batch.
        self._onnx: bytes | None = None
        self._shared: SharedExport | None = None
        self.lean: OnnxForward | SharedForward | None = None

    # ------------------------------------------------------------------ fit
    @property
    def is_neural(self) -> bool:
        return not isinstance(self.config.model, LightGBMConfig)

    def fit(
        self,
        data,  # Dataset (not imported: the featurizer only reads its vocabularies and tables)
        train_samples: pl.DataFrame,
        valid_samples: pl.DataFrame,
        log: pl.DataFrame,
        *,
        health_dir: Path | None = None,
    ) -> Self:
        """Fit features on the training samples, then the model, then the fusion weights.

        Args:
            data: the training Dataset (vocabularies, item and user tables).
            train_samples / valid_samples: Samples with ``label_<task>`` for every task; the
                validation part (later queries) drives early stopping and fusion tuning.
            log: interactions (``user_idx, item_idx, timestamp, event``) the features read;
                each sample only sees events strictly before its timestamp.
            health_dir: where training-health records and plots go (neural models).
        """
        start = time.perf_counter()
        self.features = PointInTimeFeatures(self.config.features).fit(data, train_samples, log)
        if self.config.uses_scenario:
            self.scenarios = ScenarioVocab.fit(train_samples)
        if self.config.semantic_ids is not None:
            self.semantic = SemanticItemFields(self.config.semantic_ids).fit(data)
        # weight_<task> columns (watch time's weighted LR) ride along to the loss.
        x_train = with_sample_weights(self._transform(train_samples, log), train_samples)
        x_valid = with_sample_weights(self._transform(valid_samples, log), valid_samples)
        self.stats["featurize_s"] = time.perf_counter() - start
        self.keep_rate = negative_keep_rate(train_samples)
        self.stats["negative_keep_rate"] = self.keep_rate
        return self.fit_features(x_train, x_valid, health_dir=health_dir)

    def fit_features(
        self, x_train: RankFeatures, x_valid: RankFeatures, *, health_dir: Path | None = None
    ) -> Self:
        """Fit the model and fusion on features already computed (shared across models)."""
        missing = [t for t in self.tasks if t not in x_train.labels]
        if missing:
            raise ValueError(f"training samples have no labels for tasks {missing}")
        model = self.config.model
        check_objective(model, self.config.train)
        self.stats["outputs"] = (
            "probabilities" if self.config.outputs_probabilities else "ranking_scores"
        )
        start = time.perf_counter()
        if isinstance(model, LightGBMConfig):
            self.boosters = LightGBMRanker(model).fit(x_train, x_valid)
            self.stats["train_samples_per_s"] = len(x_train) / max(
                time.perf_counter() - start, 1e-9
            )
        else:
            self._fit_network(model, x_train, x_valid, health_dir)
        self.stats["train_s"] = time.perf_counter() - start
        self.stats["train_samples"] = len(x_train)
        if self.config.train.calibration == "isotonic" and self.config.outputs_probabilities:
            self._fit_calibrators(x_valid)
        if self.config.fusion.formula is None and len(self.tasks) > 1 and len(x_valid) > 0:
            self._tune_fusion(x_valid)
        return self

    def _fit_calibrators(self, x_valid: RankFeatures) -> None:
        """One isotonic map per task with both classes in the validation samples."""
        probs = self.predict_features(x_valid)
        for task in self.tasks:
            labels = x_valid.labels[task]
            if 0 < labels.sum() < labels.shape[0]:
                self.calibrators[task] = IsotonicCalibrator().fit(probs[task], labels)
        self.stats["calibrated_tasks"] = sorted(self.calibrators)

    def _batches(self, table: BatchTable, epoch: int) -> Iterator[Batch]:
        """One epoch's shuffled training batches: of rows (pointwise), or of whole queries
        (listwise, whose softmax must see all of a query's candidates at once)."""
        seed = self.config.train.seed * 1000 + epoch
        size = self.config.train.batch_size
        if self.config.train.loss == "listwise":
            rng = np.random.default_rng(seed)
            for query_rows in query_batches(table.column(QUERY_KEY).numpy(), size, rng):
                yield table.rows(query_rows)
            return
        order = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed)).numpy()
        for start in range(0, len(table), size):
            yield table.rows(order[start : start + size])

    def _eval_batches(self, table: BatchTable) -> Iterator[Batch]:
        """Validation batches for the loss: in order, of whole queries when listwise."""
        if self.config.train.loss != "listwise":
            yield from self._inference_batches(table, len(table))
            return
        size = self.config.serve.inference_batch_size
        for rows in query_batches(table.column(QUERY_KEY).numpy(), size):
            yield table.rows(rows, self._device)

    def _fit_network(
        self,
        model: RankModelConfig,
        x_train: RankFeatures,
        x_valid: RankFeatures,
        health_dir: Path | None,
    ) -> None:
        network = build_rank_model(model, x_train.spec)
        train_config = self.config.train
        loss = MultiTaskLoss(
            MultiTaskLossConfig(
                tasks=self.tasks,
                uncertainty=train_config.uncertainty_weighting,
                loss=train_config.loss,
            )
        )
        listwise = train_config.loss == "listwise"
        if listwise and is_distributed():
            # Workers shard rows; a listwise softmax must see all of a query's candidates.
            raise ConfigError("rank.train.loss='listwise' does not train distributed yet")
        train_table = BatchTable(x_train, query=listwise)
        valid = BatchTable(x_valid, query=listwise)
        keep = KeepBest(network, "valid_loss", "min")

        def evaluate(model: torch.nn.Module, epoch: int) -> dict[str, float]:
            # The training loss on whole-query batches (listwise), weighted by batch rows.
            total, count = 0.0, 0
            for batch in self._eval_batches(valid):
                out = model(batch)
                total += float(loss(out, batch)["loss"]) * batch["sparse"].shape[0]
                count += batch["sparse"].shape[0]
            return {"valid_loss": total / max(count, 1)}

        callbacks: list = []
        if len(x_valid):  # no validation samples (a tiny log): train the configured epochs
            callbacks.append(keep)
            callbacks.append(EarlyStopping("valid_loss", patience=self.config.train.patience))
        monitor = None
        # Under torchrun only rank 0 writes the health records (every worker trains alike).
        if self.config.train.health and health_dir is not None and is_main_process():
            monitor = HealthMonitor(HealthConfig(out_dir=health_dir, every_n_steps=50))
            callbacks.append(monitor)
        result = train(
            network,
            loss,
            lambda epoch: self._batches(train_table, epoch),
            self.config.train.loop,
            device=self._device,
            callbacks=callbacks,
            evaluate=evaluate if len(x_valid) else None,
        )
        keep.restore()
        network.eval()
        self.network = network
        self.stats.update(
            {
                "epochs": len(result.epochs),
                "train_samples_per_s": result.samples_per_s,
                "best_valid_loss": keep.best,
                "skipped_steps": result.skipped_steps,
                "history": result.epochs,
            }
        )
        if monitor is not None:
            self.stats["health_findings"] = [
                {"kind": f.kind, "layer": f.layer, "severity": f.severity, "message": f.message}
                for f in monitor.findings
            ]
        if isinstance(network, GatedRankModel) and len(x_valid):
            util = network.gate_utilisation_over(
                self._inference_batches(valid, min(len(x_valid), 50_000))
            )
            self.stats["gate_utilisation"] = {
                t: [round(float(x), 4) for x in v] for t, v in util.items()
            }

    def _inference_batches(self, table: BatchTable, n: int) -> Iterator[Batch]:
        """The first ``n`` rows in order, in batches of ``serve.inference_batch_size``."""
        size = self.config.serve.inference_batch_size
        for start in range(0, n, size):
            yield table.rows(slice(start, min(start + size, n)), self._device)

    def _tune_fusion(self, x_valid: RankFeatures) -> None:
        probs = self.predict_features(x_valid)
        weights = {t: self.config.fusion.value_weights.get(t, 1.0) for t in self.tasks}
        target = FusionTarget(
            metric=self.config.fusion.metric, k=self.config.fusion.k, value_weights=weights
        )
        result = search_fusion(
            probs,
            {t: x_valid.labels[t] for t in self.tasks},
            x_valid.group,
            target,
            n_trials=self.config.fusion.trials,
            rng=np.random.default_rng(self.config.train.seed),
        )
        self.fusion_config = result.best
        self.stats["fusion"] = {
            "target": target.name,
            "best": result.best_value,
            "uniform": result.baseline_value,
            "weights": result.best.weights,
            "kind": result.best.kind,
        }

    @property
    def known_items(self) -> int:
        """Items the featurizer was fitted with (indices below this); later items are unknown."""
        if self.features is None:
            raise RuntimeError("the ranker is not fitted")
        spec = self.features.spec
        return int(spec.sparse_cardinalities[spec.item_field]) - 1

    # -------------------------------------------------------------- predict
    def predict_features(self, x: RankFeatures) -> dict[str, NDArray[np.float64]]:
        """``{task: probability [N]}`` for precomputed features, corrected for negative
        down-sampling (``rank.samples.max_negatives_per_query``) when training used it.

        With a list objective the values are ranking scores in ``[0, 1]`` and are returned
        uncorrected (see the module docstring)."""
        probs = self._raw_probs(x)
        # The correction (He et al. 2014) rescales odds that down-sampling inflated by
        # 1 / keep_rate. A listwise or lambdarank score has no odds to rescale: it is only
        # defined up to a per-query shift, and dropping negatives changes which candidates a
        # query's list holds, not a known factor on its scores, so "correcting" it would only
        # pretend to calibrate (and, being monotone, would not change any order anyway).
        if self.keep_rate < 1.0 and self.config.outputs_probabilities:
            probs = correct_task_probabilities(probs, self.keep_rate)
        for task, calibrator in self.calibrators.items():
            probs[task] = calibrator.transform(probs[task])
        return probs

    def _raw_probs(self, x: RankFeatures) -> dict[str, NDArray[np.float64]]:
        if self.boosters is not None:
            return self.boosters.predict(x)
        if self.network is None:
            raise RuntimeError("the ranker is not fitted")
        outputs: dict[str, list[NDArray]] = {t: [] for t in self.tasks}
        if self.network.training:  # eval() walks every module: ~0.2 ms a served request
            self.network.eval()
        with torch.no_grad():
            for batch in self._predict_batches(x):
                logits = self._forward(batch)
                # sigmoid: probabilities (pointwise BCE) or ranking scores (listwise).
                for t in self.tasks:
                    outputs[t].append(torch.sigmoid(logits[t]).double().cpu().numpy())
        return {
            t: (np.concatenate(v) if v else np.zeros(0, dtype=np.float64))
            for t, v in outputs.items()
        }

    def _predict_batches(self, x: RankFeatures) -> Iterator[Batch]:
        """Inference batches of ``x`` in order. The ONNX path reads only ``sparse`` and
        ``dense`` (:data:`~funnelrec.rank.lean.LEAN_INPUTS`): it gets views of those two, and
        the behaviour sequences are never gathered (a served request's features then never
        compute them: :class:`~funnelrec.features.pit.sequences.DeferredSequences`)."""
        if self.lean is None:
            yield from self._inference_batches(BatchTable(x, labels=False), len(x))
            return
        size = self.config.serve.inference_batch_size
        for start in range(0, len(x), size):
            rows = slice(start, start + size)
            yield {
                key: torch.from_numpy(np.require(values[rows], requirements=["C", "W"]))
                for key, values in (("sparse", x.sparse), ("dense", x.dense))
            }

    def _forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The network on an inference batch; a batch of one user's candidates reads its
        behaviour side from :attr:`behaviour_cache` when the network has one (TWIN, ETA)."""
        network = self.network
        assert network is not None
        if self.lean is not None:
            return self.lean(batch)
        if projects_behaviours(network) and one_sequence(batch):
            cache = self.behaviour_cache.get(
                batch["seq_item"][:1], batch["seq_category"][:1], network.behaviour_projection
            )
            return network(batch, cache)
        return network(batch)

    def predict(
        self, samples: pl.DataFrame, log: pl.DataFrame | PreparedLog
    ) -> dict[str, NDArray[np.float64]]:
        """``{task: probability [N]}`` for Samples, features read from ``log``."""
        if self.features is None:
            raise RuntimeError("the ranker is not fitted")
        if samples.height == 0:  # a request with nothing to judge (e.g. a cold user)
            return {t: np.zeros(0, dtype=np.float64) for t in self.tasks}
        labels = [c for c in samples.columns if c.startswith("label_")]
        unlabelled = samples.drop(labels) if labels else samples  # drop costs 0.1 ms
        log = self._log_for(unlabelled, log)
        return self.predict_features(self._transform(unlabelled, log))

    def _transform(self, samples: pl.DataFrame, log: pl.DataFrame | PreparedLog) -> RankFeatures:
        """The featurizer's features of ``samples``, plus the scenario field when used."""
        assert self.features is not None
        x = self.features.transform(samples, log)
        if self.semantic is not None:
            x = self.semantic.add_fields(x, samples)
        return x if self.scenarios is None else self.scenarios.add_field(x, samples)

    @property
    def spec(self) -> FeatureSpec:
        """The model's input spec: the featurizer's, plus the scenario field when used."""
        if self.features is None:
            raise RuntimeError("the ranker is not fitted")
        spec = self.features.spec
        if self.semantic is not None:
            spec = self.semantic.extend_spec(spec)
        return spec if self.scenarios is None else self.scenarios.extend_spec(spec)

    def _log_for(
        self, samples: pl.DataFrame, log: pl.DataFrame | PreparedLog
    ) -> pl.DataFrame | PreparedLog:
        """The log to read: a batch scored against a log it was already scored against once
        reads that log's :class:`PreparedLog` (built on the second sighting, so a log passed
        once, like a replay's, never pays for an index). Same features either way.

        Small requests always qualify. A big batch (offline evaluation, the guards) qualifies
        when the log is longer than the batch: the plain path scans the whole log and sorts
        the rows of the batch's users and items, which for a big batch is most of the log, so
        evaluating every held-out query in batches cost batches x log (docs/scaling.md)."""
        assert self.features is not None
        if isinstance(log, PreparedLog):
            return log
        if samples.height > PREPARED_MAX_SAMPLES and log.height <= samples.height:
            return log
        seen = self._log_seen
        if seen is None or seen[0] is not log:
            self._log_seen = (log, None)
            return log
        prepared = seen[1]
        if prepared is None:
            prepared = self.features.prepare(log)
            self._log_seen = (log, prepared)
        return prepared

    def prepare(self, log: pl.DataFrame) -> PreparedLog:
        """``log`` indexed once for many small requests (serving): the same features."""
        if self.features is None:
            raise RuntimeError("the ranker is not fitted")
        return self.features.prepare(log)

    def score(self, samples: pl.DataFrame, log: pl.DataFrame | PreparedLog) -> pl.DataFrame:
        """The Scores table: ``samples`` + ``p_<task>`` + fused ``score``."""
        probs = self.predict(samples, log)
        fused = fuse(probs, self.fusion_config) if len(samples) else np.zeros(0)
        added = [
            *[float32_series(f"p_{t}", probs[t].astype(np.float32)) for t in self.tasks],
            float32_series("score", fused.astype(np.float32)),
        ]
        # hstack (eager) unless a column is replaced: with_columns plans a lazy query.
        replaced = {s.name for s in added} & set(samples.columns)
        return samples.with_columns(*added) if replaced else samples.hstack(added)

    # ---------------------------------------------------------------- state
    def state(self) -> dict[str, NDArray]:
        """Arrays only (featurizer, model weights or booster texts, fusion as JSON bytes)."""
        if self.features is None:
            raise RuntimeError("the ranker is not fitted")
        out: dict[str, NDArray] = {f"features.{k}": v for k, v in self.features.state().items()}
        if self.scenarios is not None:
            out.update({f"scenario.{k}": v for k, v in self.scenarios.state().items()})
        if self.semantic is not None:
            out.update({f"sid.{k}": v for k, v in self.semantic.state().items()})
        if self.boosters is not None:
            out.update({f"gbdt.{k}": v for k, v in self.boosters.state().items()})
        else:
            assert self.network is not None
            out.update(
                {f"net.{k}": v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
            )
            onnx = self._lean_export()
            if onnx is not None:
                out["onnx"] = np.frombuffer(onnx, dtype=np.uint8)
                out.update(self._shared_export())
        meta = {
            "keep_rate": self.keep_rate,
            "tasks": list(self.tasks),
            "fusion": self.fusion_config.model_dump(mode="json"),
            "spec": _spec_json(self.features),
        }
        out["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        out.update({f"calib.{k}": v for k, v in calibrators_state(self.calibrators).items()})
        return out

    @classmethod
    def from_state(cls, config: RankConfig, state: dict[str, NDArray]) -> Ranker:
        meta = json.loads(bytes(state["meta"]).decode())
        ranker = cls(config, tuple(meta["tasks"]))
        ranker.fusion_config = FusionConfig.model_validate(meta["fusion"])
        ranker.keep_rate = float(meta.get("keep_rate", 1.0))
        ranker.calibrators = calibrators_from_state(prefixed(state, "calib."))
        ranker.features = PointInTimeFeatures.from_state(
            config.features, prefixed(state, "features.")
        )
        if config.uses_scenario:
            ranker.scenarios = ScenarioVocab.from_state(prefixed(state, "scenario."))
        if config.semantic_ids is not None:
            ranker.semantic = SemanticItemFields.from_state(
                config.semantic_ids, prefixed(state, "sid.")
            )
        if isinstance(config.model, LightGBMConfig):
            ranker.boosters = LightGBMRanker.from_state(config.model, prefixed(state, "gbdt."))
        else:
            network = build_rank_model(config.model, ranker.spec)
            weights = {k: torch.from_numpy(np.array(v)) for k, v in prefixed(state, "net.").items()}
            network.load_state_dict(weights)
            network.to(ranker._device)
            network.eval()
            ranker.network = network
            if "onnx" in state and config.serve.runtime == "auto" and ranker._device.type == "cpu":
                ranker._onnx = bytes(state["onnx"])
                ranker.lean = load_lean(ranker._onnx, ranker.tasks)
                ranker._shared = SharedExport.from_state(state)
                if ranker.lean is not None and ranker._shared is not None:
                    ranker.lean = ranker._shared.forward(ranker.lean)
        return ranker

    def _lean_export(self) -> bytes | None:
        """The network's ONNX export for the lean path (made on the first call; None when
        ``rank.serve.runtime`` is "torch" or the network does not export; the reason is in
        :attr:`stats`)."""
        if self.config.serve.runtime != "auto" or self.network is None:
            return None
        if self._onnx is None and "lean_inference" not in self.stats:
            self._onnx, outcome = export_onnx(self.network, self.spec, self.tasks)
            self.stats["lean_inference"] = outcome
            if self._onnx is None:
                logger.info("the ranker serves with eager PyTorch: %s", outcome)
        return self._onnx

    def _shared_export(self) -> dict[str, NDArray]:
        """The request-shared form's state (made on the first call; empty when the network
        has none, with the reason in :attr:`stats`)."""
        if self._shared is None and "lean_shared" not in self.stats:
            assert self.network is not None and self.features is not None
            self._shared, self.stats["lean_shared"] = SharedExport.make(
                self.network, self.spec, self.tasks, self.features.request_shared()
            )
        return {} if self._shared is None else self._shared.state()


def _spec_json(features: PointInTimeFeatures) -> dict:
    spec = features.spec
    return {"sparse_names": list(spec.sparse_names), "n_dense": spec.n_dense}

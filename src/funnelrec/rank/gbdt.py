"""LightGBM "independent models" baseline: one booster per task on RankFeatures.

Each booster is a binary classifier (``objective="binary"``, the default) or a LambdaMART
ranker over the samples' queries (``objective="lambdarank"``; query grouping, metric and the
sigmoid that maps its scores into ``[0, 1]`` are in :mod:`funnelrec.rank.gbdt_objective`).

Design matrix ``[N, P]`` (float64), built identically at fit and predict time:

* **sparse fields** with cardinality ``<= max_categorical_cardinality`` (or those named in
  ``categorical_fields``) enter as LightGBM categorical features (0 = unknown is an ordinary
  category). Higher-cardinality id fields (user, item, ...) are dropped by default
  (``high_cardinality="drop"``): their indices come from a Vocabulary sorted by external id,
  so their numeric order means nothing, and one-hot/categorical splits over millions of ids
  just memorise. ``high_cardinality="numeric"`` keeps them as plain numbers instead.
* **dense** features as they are.
* **sequence aggregates** (``sequence_features="aggregates"``, the default): history length,
  log-gap of the most recent behaviour and mean log-gap, how many history items equal the
  candidate item, and the share of history in the candidate's category. ``"none"`` skips
  them.

Persistence follows the house rule: :meth:`LightGBMRanker.state` returns numpy arrays only
(each booster's ``model_to_string()`` as ``uint8``, a JSON layout as ``uint8``, base rates),
and :meth:`LightGBMRanker.from_state` rebuilds boosters from the text — nothing is pickled and
loading runs no code from the artifact.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import numpy as np
from numpy.typing import NDArray

from funnelrec.features.spec import FeatureSpec, RankFeatures
from funnelrec.rank.gbdt_config import LightGBMConfig, Objective
from funnelrec.rank.gbdt_objective import (
    make_dataset,
    metric_key,
    objective_params,
    output_scores,
)

if TYPE_CHECKING:  # imported where a booster is built or read: serving a neural ranker
    import lightgbm as lgb  # never loads LightGBM (seconds of worker start-up)

# LightGBMConfig is defined in gbdt_config (torch/LightGBM-free) and re-exported here for
# callers that import the config together with the ranker.
__all__ = ["SEQ_AGGREGATES", "LightGBMConfig", "LightGBMRanker"]

logger = logging.getLogger(__name__)

SEQ_AGGREGATES = (
    "seq_len",
    "seq_gap_last",
    "seq_gap_mean",
    "seq_same_item",
    "seq_same_category_share",
)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Which inputs become which design-matrix columns (persisted as JSON)."""

    tasks: tuple[str, ...]
    sparse_names: tuple[str, ...]
    sparse_columns: tuple[int, ...]  # indices into spec.sparse_names, in column order
    categorical: tuple[int, ...]  # design-matrix column indices that are categorical
    n_dense: int
    sequence_features: bool
    feature_names: tuple[str, ...]
    # Persisted so a loaded model knows whether its boosters output probabilities or scores.
    objective: Objective = "binary"

    def to_json(self) -> str:
        return json.dumps(
            {
                "tasks": list(self.tasks),
                "sparse_names": list(self.sparse_names),
                "sparse_columns": list(self.sparse_columns),
                "categorical": list(self.categorical),
                "n_dense": self.n_dense,
                "sequence_features": self.sequence_features,
                "feature_names": list(self.feature_names),
                "objective": self.objective,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> _Layout:
        d = json.loads(text)
        objective = d.get("objective", "binary")  # states saved before lambdarank existed
        if objective not in ("binary", "lambdarank"):
            raise ValueError(f"unknown LightGBM objective {objective!r} in the state")
        return cls(
            tasks=tuple(d["tasks"]),
            sparse_names=tuple(d["sparse_names"]),
            sparse_columns=tuple(int(i) for i in d["sparse_columns"]),
            categorical=tuple(int(i) for i in d["categorical"]),
            n_dense=int(d["n_dense"]),
            sequence_features=bool(d["sequence_features"]),
            feature_names=tuple(d["feature_names"]),
            objective=objective,
        )


_UNSAFE = re.compile(r"[^0-9A-Za-z_.\-]")


def _safe(name: str) -> str:
    """A feature name LightGBM accepts (no JSON special characters or spaces)."""
    return _UNSAFE.sub("_", name)


def _layout(spec: FeatureSpec, config: LightGBMConfig) -> _Layout:
    names = spec.sparse_names
    if config.categorical_fields is not None:
        unknown = sorted(set(config.categorical_fields) - set(names))
        if unknown:
            raise ValueError(f"categorical_fields {unknown} are not sparse fields of {names}")
        is_cat = [n in config.categorical_fields for n in names]
    else:
        is_cat = [c <= config.max_categorical_cardinality for c in spec.sparse_cardinalities]
    keep_all = config.high_cardinality == "numeric"
    sparse_columns = tuple(f for f in range(len(names)) if is_cat[f] or keep_all)
    categorical = tuple(j for j, f in enumerate(sparse_columns) if is_cat[f])
    dense_names = (
        spec.dense_names
        if len(spec.dense_names) == spec.n_dense
        else tuple(f"dense_{i}" for i in range(spec.n_dense))
    )
    use_seq = config.sequence_features == "aggregates" and spec.seq_len > 0
    feature_names = tuple(
        _safe(n)
        for n in (
            *(f"sparse.{names[f]}" for f in sparse_columns),
            *(f"dense.{n}" for n in dense_names),
            *(SEQ_AGGREGATES if use_seq else ()),
        )
    )
    if len(set(feature_names)) != len(feature_names):
        raise ValueError(f"feature names collide after sanitising: {feature_names}")
    dropped = [names[f] for f in range(len(names)) if f not in sparse_columns]
    if dropped:
        logger.info("LightGBM drops high-cardinality sparse fields %s", dropped)
    return _Layout(
        tasks=spec.tasks,
        sparse_names=names,
        sparse_columns=sparse_columns,
        categorical=categorical,
        n_dense=spec.n_dense,
        sequence_features=use_seq,
        feature_names=feature_names,
        objective=config.objective,
    )


def _sequence_aggregates(features: RankFeatures) -> NDArray[np.float64]:
    """``[N, 5]`` history aggregates (see :data:`SEQ_AGGREGATES`); zeros for empty histories."""
    spec = features.spec
    valid = features.seq_item > 0  # [N, L]
    length = valid.sum(axis=1).astype(np.float64)
    denom = np.maximum(length, 1.0)
    gap = np.where(valid, features.seq_gap, 0.0).astype(np.float64)
    # Most recent first, so the first valid slot (argmax of the mask) is the latest behaviour.
    first = np.argmax(valid, axis=1)
    gap_last = np.where(length > 0, gap[np.arange(gap.shape[0]), first], 0.0)
    item = features.sparse[:, spec.item_field][:, None]
    cat = features.sparse[:, spec.category_field][:, None]
    same_item = ((features.seq_item == item) & valid & (item > 0)).sum(axis=1)
    same_cat = ((features.seq_category == cat) & valid & (cat > 0)).sum(axis=1)
    return np.column_stack(
        [length, gap_last, gap.sum(axis=1) / denom, same_item, same_cat / denom]
    ).astype(np.float64)


def _design_matrix(features: RankFeatures, layout: _Layout) -> NDArray[np.float64]:
    """``[N, P]`` float64 inputs in the column order of ``layout.feature_names``."""
    spec = features.spec
    if spec.sparse_names != layout.sparse_names:
        raise ValueError(
            f"features have sparse fields {spec.sparse_names}, model expects {layout.sparse_names}"
        )
    if features.dense.shape[1] != layout.n_dense:
        raise ValueError(
            f"features have {features.dense.shape[1]} dense columns, model expects {layout.n_dense}"
        )
    parts = [
        features.sparse[:, list(layout.sparse_columns)].astype(np.float64),
        features.dense.astype(np.float64),
    ]
    if layout.sequence_features:
        parts.append(_sequence_aggregates(features))
    return np.concatenate(parts, axis=1)


class LightGBMRanker:
    """One independent LightGBM booster per task (binary classifier or LambdaMART ranker).

    A task whose training labels hold a single class gets no booster: a warning is logged and
    it predicts its training base rate (0 or 1) for every row. With ``objective="lambdarank"``
    the same holds for a task with no training query holding both a positive and a negative;
    its constant (the base rate) ranks nothing.

    Example:
        >>> from funnelrec.features.behaviours import DenseSequences
        >>> from funnelrec.features.spec import FeatureSpec, RankFeatures
        >>> rng = np.random.default_rng(0)
        >>> n = 400
        >>> spec = FeatureSpec(("item", "cat"), (50, 4), 1, 0, 0, 1, ("click",))
        >>> x = rng.normal(size=(n, 1)).astype(np.float32)
        >>> none = DenseSequences(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.int64),
        ...     np.zeros((n, 0), np.float32))
        >>> f = RankFeatures(spec, np.column_stack([rng.integers(1, 50, n),
        ...     rng.integers(1, 4, n)]), x, none,
        ...     {"click": (x[:, 0] > 0).astype(np.float32)}, np.arange(n) // 10, np.arange(n))
        >>> cfg = LightGBMConfig(n_estimators=20, min_child_samples=5)
        >>> model = LightGBMRanker(cfg).fit(f)
        >>> probs = model.predict(f)
        >>> probs["click"].shape, model.feature_names
        ((400,), ('sparse.item', 'sparse.cat', 'dense.dense_0'))
    """

    def __init__(self, config: LightGBMConfig) -> None:
        self.config = config
        self._layout: _Layout | None = None
        self._boosters: dict[str, lgb.Booster] = {}
        self._base_rate: dict[str, float] = {}

    # ------------------------------------------------------------------ properties
    @property
    def tasks(self) -> tuple[str, ...]:
        """Task names, in the order of the training spec."""
        return self._fitted().tasks

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Design-matrix column names (``sparse.<field>``, ``dense.<name>``, aggregates)."""
        return self._fitted().feature_names

    def _fitted(self) -> _Layout:
        if self._layout is None:
            raise RuntimeError("LightGBMRanker is not fitted; call fit() or from_state()")
        return self._layout

    def _params(self) -> dict[str, object]:
        c = self.config
        params: dict[str, object] = {
            **objective_params(c),
            "num_leaves": c.num_leaves,
            "learning_rate": c.learning_rate,
            "min_child_samples": c.min_child_samples,
            "feature_fraction": c.feature_fraction,
            "lambda_l2": c.lambda_l2,
            "seed": c.seed,
            "deterministic": c.deterministic,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if c.num_threads > 0:
            params["num_threads"] = c.num_threads
        return params

    # ------------------------------------------------------------------ training
    def fit(self, train: RankFeatures, valid: RankFeatures | None = None) -> Self:
        """Train one booster per task of ``train.spec.tasks``.

        Args:
            train: training rows; ``labels`` must hold every task of the spec.
            valid: optional validation rows (same spec); with ``early_stopping_rounds > 0``
                each booster stops when its validation metric (log-loss for binary,
                NDCG@``ndcg_eval_at`` over ``valid.group`` queries for lambdarank) has not
                improved for that many rounds and keeps its best iteration.

        Returns:
            ``self``.
        """
        spec = train.spec
        missing = [t for t in spec.tasks if t not in train.labels]
        if missing:
            raise ValueError(f"train.labels lacks tasks {missing}")
        if valid is not None:
            vmissing = [t for t in spec.tasks if t not in valid.labels]
            if vmissing:
                raise ValueError(f"valid.labels lacks tasks {vmissing}")
        if len(train) == 0:
            raise ValueError("cannot fit on zero rows")
        layout = _layout(spec, self.config)
        x_train = _design_matrix(train, layout)
        x_valid = _design_matrix(valid, layout) if valid is not None else None
        params = self._params()
        boosters: dict[str, lgb.Booster] = {}
        base_rate: dict[str, float] = {}
        for task in spec.tasks:
            y = np.asarray(train.labels[task], dtype=np.float64)
            base_rate[task] = float(y.mean())
            n_pos = int((y > 0.5).sum())
            if n_pos in (0, y.shape[0]):
                logger.warning(
                    "task %r has a single class in train (%d positives of %d); "
                    "predicting its base rate %.3g",
                    task,
                    n_pos,
                    y.shape[0],
                    base_rate[task],
                )
                continue
            booster = self._train_one(task, x_train, y, train.group, valid, x_valid, layout, params)
            if booster is not None:
                boosters[task] = booster
        self._layout = layout
        self._boosters = boosters
        self._base_rate = base_rate
        return self

    def _train_one(
        self,
        task: str,
        x_train: NDArray[np.float64],
        y: NDArray[np.float64],
        group: NDArray[np.int64],
        valid: RankFeatures | None,
        x_valid: NDArray[np.float64] | None,
        layout: _Layout,
        params: dict[str, object],
    ) -> lgb.Booster | None:
        import lightgbm as lgb

        names, cats = layout.feature_names, layout.categorical
        dtrain = make_dataset(
            x_train, y, group, layout.objective, feature_names=names, categorical=cats
        )
        if dtrain is None:
            logger.warning(
                "task %r: no training query has both a positive and a negative, so lambdarank "
                "has nothing to order; predicting a constant",
                task,
            )
            return None
        valid_sets: list[lgb.Dataset] = []
        callbacks: list = []
        if valid is not None and x_valid is not None:
            yv = np.asarray(valid.labels[task], dtype=np.float64)
            dvalid = make_dataset(
                x_valid,
                yv,
                valid.group,
                layout.objective,
                feature_names=names,
                categorical=cats,
                reference=dtrain,
            )
            if dvalid is None:
                logger.warning(
                    "task %r: no validation query has both a positive and a negative; "
                    "training without early stopping",
                    task,
                )
            else:
                valid_sets.append(dvalid)
            if valid_sets and self.config.early_stopping_rounds > 0:
                callbacks.append(
                    lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)
                )
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=self.config.n_estimators,
            valid_sets=valid_sets,
            valid_names=["valid"] * len(valid_sets),
            callbacks=callbacks,
        )
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        if valid_sets:
            key = metric_key(self.config)
            score = booster.best_score.get("valid", {}).get(key, float("nan"))
            logger.info("task %r: %d trees, valid %s %.5f", task, best, key, score)
        else:
            logger.info("task %r: %d trees (no validation set)", task, best)
        # Re-load from text so a fresh model and a loaded one share one code path.
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))

    # ------------------------------------------------------------------ inference
    def predict(self, features: RankFeatures) -> dict[str, NDArray[np.float64]]:
        """Probabilities (binary) or ranking scores (lambdarank) per task.

        Args:
            features: rows to score; their spec must have the training sparse fields and
                dense width.

        Returns:
            task -> ``[N]`` float64 in ``[0, 1]``: probabilities for ``objective="binary"``;
            for ``"lambdarank"`` the sigmoid of the booster's ranking score, monotone in it
            but **not** a calibrated probability (it orders a query's samples, nothing more).
        """
        layout = self._fitted()
        n = len(features)
        x = _design_matrix(features, layout) if self._boosters else None
        out: dict[str, NDArray[np.float64]] = {}
        for task in layout.tasks:
            booster = self._boosters.get(task)
            if booster is None or x is None:
                out[task] = np.full(n, self._base_rate[task], dtype=np.float64)
            else:
                out[task] = output_scores(booster.predict(x), layout.objective)
        return out

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, NDArray]:
        """Arrays that, with the config, rebuild this model exactly.

        Keys: ``layout`` (uint8 JSON), ``base_rate`` (``[T]`` float64 in task order),
        ``has_booster`` (``[T]`` bool) and ``booster.<task>`` (uint8 LightGBM model text) for
        every task with a booster.
        """
        layout = self._fitted()
        state: dict[str, NDArray] = {
            "layout": np.frombuffer(layout.to_json().encode("utf-8"), dtype=np.uint8).copy(),
            "base_rate": np.array([self._base_rate[t] for t in layout.tasks], dtype=np.float64),
            "has_booster": np.array([t in self._boosters for t in layout.tasks], dtype=bool),
        }
        for task, booster in self._boosters.items():
            text = booster.model_to_string()
            state[f"booster.{task}"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()
        return state

    @classmethod
    def from_state(cls, config: LightGBMConfig, state: dict[str, NDArray]) -> LightGBMRanker:
        """Rebuild a fitted ranker from :meth:`state` (no pickles; model text is parsed).

        Raises:
            ValueError: the state is inconsistent, or was trained with another objective than
                ``config.objective`` (its outputs would be read as the wrong kind).
        """
        model = cls(config)
        layout = _Layout.from_json(np.asarray(state["layout"], dtype=np.uint8).tobytes().decode())
        if layout.objective != config.objective:
            raise ValueError(
                f"the state was trained with objective {layout.objective!r}, "
                f"the config says {config.objective!r}"
            )
        base = np.asarray(state["base_rate"], dtype=np.float64)
        has = np.asarray(state["has_booster"], dtype=bool)
        if base.shape != (len(layout.tasks),) or has.shape != base.shape:
            raise ValueError("state base_rate/has_booster do not match the layout's tasks")
        model._layout = layout
        model._base_rate = {t: float(b) for t, b in zip(layout.tasks, base, strict=True)}
        import lightgbm as lgb

        for task, present in zip(layout.tasks, has, strict=True):
            if present:
                key = f"booster.{task}"
                if key not in state:
                    raise ValueError(f"state lacks {key!r}")
                text = np.asarray(state[key], dtype=np.uint8).tobytes().decode("utf-8")
                model._boosters[task] = lgb.Booster(model_str=text)
        return model

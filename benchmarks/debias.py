"""Position bias, IPS and off-policy evaluation, scored against the simulator's truth.

On the logged-exposure simulator (``data.simulator.exposure``: a power examination curve, a
logging policy that pushes popular items up, 10% randomly ordered requests), the first 80% of
the requests are the training log and the rest the held-out log:

1. **Curve**: the examination curve estimated from the training log by result randomisation
   (random slice only), by EM (one relevance per item) and by regression-EM (relevance = a
   logistic regression on item + logging-score bins, 60 steps), each against the planted curve
   (max abs error).
2. **Models**: one relevance tower trained naive / IPS (clipped 1/curve from randomisation) /
   PAL / position-as-feature; on the held-out requests' full pools, AUC and NDCG@K against
   the TRUE relevance (expected AUC: each row counts as a positive with weight = relevance and
   as a negative with weight 1 - relevance), and click AUC on the held-out logged slice, on
   its random slice and IPS-weighted on the logged slice (which evaluation ranks the models
   as the truth does?).
3. **Off-policy**: each model's top-K policy on the held-out pools, valued by IPS, SNIPS and
   doubly robust (direct model: the PAL model's P(click) at each position) from the held-out log
   (the logging policy is the mixture of Plackett-Luce and random order; its propensities are
   logged), against its on-policy truth (expected clicks per request under the planted model);
   propensities floored at 0.001 (clips nothing here) and, for IPS, also at 0.01.
4. **ItemCF popularity correction**: ItemCF on the training clicks with
   ``popularity_correction`` 0 / 0.5 / 1: the mean true relevance and training exposure of
   each user's top 10.
5. **Exploration**: the same log with an epsilon-greedy slot (epsilon 0.1, 50 new items):
   new-item impressions and the smallest logged propensity.

Then the MIND sample (../shared; skipped with a reason when absent): no truth and no random
slice, so the EM curve over positions 0..9 and the raw CTR per position.

    .venv/bin/python benchmarks/debias.py [--requests 40000] [--seed 0] [--skip-mind]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from _common import SHARED_DATA, SHARED_SETS, console, render, write_json
from funnelrec.data.convert import read_format
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator.exposure import (
    ExposureLog,
    exposure_interactions,
    simulate_exposure,
)
from funnelrec.data.simulator.exposure_config import ExposureConfig
from funnelrec.eval.ope import ope_estimates, top_slates
from funnelrec.metrics.rank import auc, grouped_ndcg
from funnelrec.rank.position import (
    FittedPositionModel,
    Impressions,
    PositionModelConfig,
    fit_position_model,
)
from funnelrec.rank.propensity import (
    curve_by_em,
    curve_from_randomisation,
    ips_weights,
    positioned_impressions,
)
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig

MODES = ("naive", "ips", "pal", "feature")
CLIP = 0.05  # propensity floor of the training / evaluation weights (1 / curve)
# The logging mixture puts every pool item at every position with probability >= 0.1 / 20, so
# a floor below that clips nothing; 0.01 is also reported, to show the bias clipping adds.
OPE_CLIP = 0.001


def _rows(log: ExposureLog, sel: np.ndarray) -> dict[str, np.ndarray]:
    """Flat impression arrays of the requests ``sel``."""
    k = log.slates.shape[1]
    return {
        "user": np.repeat(log.users[sel], k),
        "item": log.slates[sel].ravel(),
        "position": np.tile(np.arange(k), sel.size),
        "click": log.clicks[sel].ravel(),
        "random": np.repeat(log.is_random[sel], k),
        "score": log.slate_scores[sel].ravel(),
    }


def _onehot(values: np.ndarray) -> sp.csr_matrix:
    codes = np.unique(values, return_inverse=True)[1]
    return sp.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes)))


def curves(rows: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    rnd = rows["random"]
    bins = np.digitize(rows["score"], np.quantile(rows["score"], np.linspace(0, 1, 21)[1:-1]))
    features = sp.hstack([_onehot(rows["item"]), _onehot(bins)]).tocsr()
    args = (rows["position"], rows["click"], rows["item"], k)
    return {
        "randomisation": curve_from_randomisation(rows["position"][rnd], rows["click"][rnd], k),
        "em (per item)": curve_by_em(*args),
        "regression-em": curve_by_em(*args, features=features, iterations=60),
    }


def _expected_auc(relevance: np.ndarray, scores: np.ndarray) -> float:
    n = relevance.size
    labels = np.r_[np.ones(n), np.zeros(n)]
    return auc(labels, np.r_[scores, scores], np.r_[relevance, 1.0 - relevance])


def fit_models(
    log: ExposureLog, config: ExposureConfig, rows: dict[str, np.ndarray], curve: np.ndarray
) -> dict[str, FittedPositionModel]:
    weight = ips_weights(rows["position"], curve, clip=CLIP)
    data = Impressions(rows["user"], rows["item"], rows["position"], rows["click"], weight)
    n_items = config.n_items + config.n_new_items
    return {
        mode: fit_position_model(
            PositionModelConfig(mode=mode),
            config.n_users,
            n_items,
            config.slate_size,
            data,
            rng=np.random.default_rng(config.seed),
        )
        for mode in MODES
    }


def model_table(
    log: ExposureLog, test: np.ndarray, models: dict[str, FittedPositionModel], curve: np.ndarray
) -> list[dict[str, Any]]:
    c = log.pools.shape[1]
    users, items = np.repeat(log.users[test], c), log.pools[test].ravel()
    group = np.repeat(np.arange(test.size), c)
    rel = log.truth.relevance[users, items]
    held = _rows(log, test)
    rnd = held["random"]
    out = []
    for mode, model in models.items():
        s = model.score(users, items)
        hs = model.score(held["user"], held["item"])
        w = ips_weights(held["position"][~rnd], curve, clip=CLIP)
        out.append(
            {
                "model": mode,
                "auc_true": _expected_auc(rel, s),
                "ndcg_true": grouped_ndcg(rel, s, group, log.slates.shape[1]),
                "auc_logged": auc(held["click"][~rnd], hs[~rnd]),
                "auc_logged_ips": auc(held["click"][~rnd], hs[~rnd], w),
                "auc_random": auc(held["click"][rnd], hs[rnd]),
            }
        )
    return out


def ope_table(
    log: ExposureLog,
    test: np.ndarray,
    models: dict[str, FittedPositionModel],
) -> list[dict[str, Any]]:
    logged = test  # the logging policy is the mixture: its propensities cover both slices
    c, k = log.pools.shape[1], log.slates.shape[1]
    users = log.users[logged]

    def q(slates: np.ndarray) -> np.ndarray:
        positions = np.tile(np.arange(k), slates.shape[0])
        p = models["pal"].click_probability(np.repeat(users, k), slates.ravel(), positions)
        return p.reshape(slates.shape)

    on_policy = float(log.clicks[logged].sum(axis=1).mean())
    truth = log.truth.expected_clicks(users, log.slates[logged])
    out = [{"policy": "logging (on-policy mean)", "truth": truth, "ips": on_policy}]
    out[0].update(snips=on_policy, match_rate=1.0, dm=float("nan"), dr=on_policy)
    out[0]["ips_clip_0.01"] = on_policy
    policies = {
        **{
            m: top_slates(
                log.pools[logged],
                models[m].score(np.repeat(users, c), log.pools[logged].ravel()).reshape(-1, c),
                k,
            )
            for m in MODES
        },
    }
    for name, target in policies.items():
        est = ope_estimates(
            log.slates[logged],
            log.clicks[logged],
            log.propensity[logged],
            target,
            clip=OPE_CLIP,
            q_target=q(target),
            q_logged=q(log.slates[logged]),
        )
        clipped = ope_estimates(
            log.slates[logged], log.clicks[logged], log.propensity[logged], target, clip=0.01
        )
        truth = log.truth.expected_clicks(users, target)
        out.append({"policy": name, "truth": truth, **est, "ips_clip_0.01": clipped["ips"]})
    return out


def exploration(config: ExposureConfig) -> dict[str, Any]:
    cfg = config.model_copy(
        update={"explore_epsilon": 0.1, "n_new_items": 50, "n_requests": config.n_requests // 4}
    )
    log = simulate_exposure(cfg)
    new = log.slates >= cfg.n_items
    return {
        "epsilon": cfg.explore_epsilon,
        "requests": cfg.n_requests,
        "new_item_impressions": int(new.sum()),
        "new_items_seen": int(np.unique(log.slates[new]).size),
        "new_item_clicks": int(log.clicks[new].sum()),
        "min_propensity": float(log.propensity.min()),
    }


def itemcf_popularity(log: ExposureLog, train: np.ndarray, k: int = 10) -> list[dict[str, Any]]:
    """ItemCF on the training log's clicks with and without the popularity correction: the
    mean TRUE relevance and the mean training exposure of each user's top-k."""
    frame = exposure_interactions(log).filter(pl.col("session_id") < train.size)
    data = Dataset.from_frame(frame.drop("is_rand"), positive_events=("click",))
    shown = np.bincount(log.slates[train].ravel(), minlength=log.truth.relevance.shape[1])
    users = np.unique(log.users[train])
    out = []
    for beta in (0.0, 0.5, 1.0):
        model = ItemCF(ItemCFConfig(popularity_correction=beta)).fit(
            data, rng=np.random.default_rng(0)
        )
        recs = model.recommend(users.tolist(), k=k)
        u, i = recs["user_id"].to_numpy(), recs["item_id"].to_numpy()
        out.append(
            {
                "popularity_correction": beta,
                "true_relevance@10": float(log.truth.relevance[u, i].mean()),
                "exposure_of_recs": float(shown[i].mean()),
                "distinct_items": int(np.unique(i).size),
            }
        )
    return out


def run_simulator(requests: int, seed: int) -> dict[str, Any]:
    config = ExposureConfig(n_requests=requests, seed=seed, policy_popularity=1.5)
    t0 = time.perf_counter()
    log = simulate_exposure(config)
    k = config.slate_size
    cut = round(0.8 * requests)
    train, test = np.arange(cut), np.arange(cut, requests)
    rows = _rows(log, train)
    est = curves(rows, k)
    planted = log.truth.curve
    render(
        "examination curve (simulator, planted (1+k)^-0.8)",
        ["estimator", *[f"k={i}" for i in range(k)], "max abs err"],
        [["planted", *planted.tolist(), 0.0]]
        + [[n, *c.tolist(), float(np.abs(c - planted).max())] for n, c in est.items()],
    )
    models = fit_models(log, config, rows, est["randomisation"])
    table = model_table(log, test, models, est["randomisation"])
    render("models (held-out requests)", list(table[0]), [list(r.values()) for r in table])
    ope = ope_table(log, test, models)
    render(
        "off-policy value (expected clicks / request)",
        list(ope[0]),
        [list(r.values()) for r in ope],
    )
    itemcf = itemcf_popularity(log, train)
    render("ItemCF popularity correction", list(itemcf[0]), [list(r.values()) for r in itemcf])
    explore = exploration(config)
    render("epsilon-greedy exploration", list(explore), [list(explore.values())])
    return {
        "config": config.model_dump(),
        "curves": {"planted": planted.tolist(), **{n: c.tolist() for n, c in est.items()}},
        "curve_max_abs_error": {n: float(np.abs(c - planted).max()) for n, c in est.items()},
        "models": table,
        "ope": ope,
        "exploration": explore,
        "itemcf_popularity": itemcf,
        "seconds": time.perf_counter() - t0,
    }


def run_mind(n_positions: int = 10) -> dict[str, Any]:
    folder, fmt = SHARED_SETS["mind"]
    path = SHARED_DATA / folder
    if not path.is_dir():
        console.print(f"[yellow]skip mind: {path} not found (needs ../shared)[/yellow]")
        return {"skipped": f"{path} not found"}
    shown = positioned_impressions(read_format(fmt, path).interactions)
    shown = shown.filter(shown["position"] < n_positions)
    pos = shown["position"].to_numpy().astype(np.int64)
    click = shown["clicked"].to_numpy()
    item = shown["item_id"].to_numpy()
    em = curve_by_em(pos, click, item, n_positions)
    ctr = np.bincount(pos, weights=click, minlength=n_positions) / np.bincount(pos)
    render(
        f"MIND sample: positions 0..{n_positions - 1} ({shown.height} impressions, no truth)",
        ["estimator", *[f"k={i}" for i in range(n_positions)]],
        [["em (per item)", *em.tolist()], ["raw CTR", *ctr.tolist()]],
    )
    return {"impressions": shown.height, "em_curve": em.tolist(), "ctr": ctr.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-mind", action="store_true")
    args = parser.parse_args()
    results = {"simulator": run_simulator(args.requests, args.seed)}
    results["mind"] = {"skipped": "--skip-mind"} if args.skip_mind else run_mind()
    write_json("debias", results)


if __name__ == "__main__":
    main()

"""ItemCF fit time: funnelrec (numba) vs implicit's CosineRecommender vs the textbook oracle.

Datasets (``--datasets``): ../shared MovieLens-100k (skipped when absent), a simulated matrix
of 1M positive interactions (click/cart/order; ``SimulatorConfig.for_positives``) and a
MovieLens-1M-shaped matrix (``ml-1m-shaped``: 6040 users x 3706 items, ~1M distinct ratings,
every user >= 20, log-normal activity, Zipf-like item popularity, session-like timestamps;
ML-1M itself is not in ../shared). On the dense one ItemCF takes its dense-data fit
(``recall/itemcf/dense.py``). Per dataset, in the same run and on the same machine:

* funnelrec ``ItemCF.fit`` with the default time-decayed config and with ``window=None``
  (all pairs, the same pair set implicit visits), from the Dataset (sequence building included);
* implicit ``CosineRecommender(K=100).fit`` on the prebuilt binary user x item CSR (building
  that matrix is not timed), with the same thread count;
* the textbook dict-of-dicts reference (``funnelrec.recall.itemcf.reference``), on all users when
  its predicted time fits ``--textbook-budget-s``, otherwise on a labelled random user subsample
  with funnelrec re-timed on the same subsample.

Times are medians of at least ``--repeats`` runs (fast ones repeated until they add up to 1 s),
funnelrec and implicit interleaved round-robin (also at 1 thread each, kept in the JSON), after
a warm-up: numba JIT excluded; the compile time and the cached first-call time are
measured separately in fresh subprocesses. The textbook runs once when it takes over 10 s.

The machine this was written on is a shared 2-vCPU VM: by default the script restarts itself
with ``OMP_WAIT_POLICY=PASSIVE`` (numba's and implicit's OpenMP threads come from the same
libgomp, so both get it) because GOMP's default spin-wait steals the only free core from the
working threads there; ``--omp-wait-policy default`` keeps GOMP's default. The 1-minute load
average at start and end is printed and stored. Targets:
funnelrec/implicit <= 2.0 and textbook/funnelrec >= 50.

    .venv/bin/python benchmarks/itemcf_fit.py [--repeats 5] [--threads N] [--datasets ...]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.nearest_neighbours import CosineRecommender
from implicit.utils import ParameterWarning

import funnelrec.recall.itemcf.model as itemcf_model
from _common import console, load_tables, render, write_json
from funnelrec.data.dataset import Dataset
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.itemcf.dense import use_dense_fit
from funnelrec.recall.itemcf.reference import textbook_itemcf
from funnelrec.recall.itemcf.sequences import build_sequences

NAME = "itemcf_fit"
K = 100
TARGET_VS_IMPLICIT = 2.0
TARGET_VS_TEXTBOOK = 50.0
CONFIGS = {
    "default": ItemCFConfig(neighbors=K),
    "window=None": ItemCFConfig(neighbors=K, window=None),
    "plain": ItemCFConfig.plain(neighbors=K),  # unit weights: implicit's cosine exactly
}
DEFAULT_DATASETS = "movielens-100k,simulator,ml-1m-shaped"

JIT_PROBE = """
import time
import warnings
import numpy as np, polars as pl
from funnelrec.data.dataset import Dataset
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
inter = pl.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 3],
    "timestamp": [0, 1, 2, 3], "event": ["click"] * 4, "value": [1.0] * 4})
data = Dataset.build(inter)
data.positives
t = time.perf_counter()
ItemCF(ItemCFConfig()).fit(data, rng=np.random.default_rng(0))
print(time.perf_counter() - t)
"""


def movielens_1m_shaped(seed: int = 0) -> pl.DataFrame:
    """Positives shaped like MovieLens-1M: 6040 users (>= 20 ratings each, log-normal extra
    activity), 3706 items with Zipf-like popularity, ~1M distinct (user, item) rows; a user's
    ratings mostly a minute apart, with a few multi-day breaks (ML-1M's rating sessions)."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_ratings = 6040, 3706, 1_000_209
    raw = rng.lognormal(0.0, 1.0, n_users)
    extra = np.floor(raw / raw.sum() * (n_ratings - 20 * n_users)).astype(np.int64)
    lengths = np.minimum(20 + extra, n_items // 2)
    log_pop = -1.1 * np.log(np.arange(n_items) + 30.0)
    users, items, times = [], [], []
    for user, n in enumerate(lengths.tolist()):
        keys = log_pop + rng.gumbel(size=n_items)  # Gumbel top-n: sampling without replacement
        items.append(np.argpartition(-keys, n - 1)[:n])
        breaks = rng.random(n) < 0.02
        gaps = np.where(breaks, rng.exponential(5 * 86_400, n), rng.exponential(60.0, n))
        start = int(rng.integers(956_700_000, 1_046_000_000))
        times.append(start + np.cumsum(gaps).astype(np.int64))
        users.append(np.full(n, user))
    return pl.DataFrame(
        {
            "user_id": np.concatenate(users),
            "item_id": np.concatenate(items),
            "timestamp": np.concatenate(times),
            "event": "click",
            "value": 1.0,
        }
    )


def never_dense(user_len: np.ndarray, window: int, n_items: int) -> bool:
    """The fit-path chooser that always answers "sparse kernel"."""
    return False


def sparse_kernel_fit(cfg: ItemCFConfig, data: Dataset) -> ItemCF:
    """``ItemCF.fit`` with the dense-data fit switched off (always the sparse kernel)."""
    chooser = itemcf_model.use_dense_fit
    itemcf_model.use_dense_fit = never_dense
    try:
        return ItemCF(cfg).fit(data, rng=np.random.default_rng(0))
    finally:
        itemcf_model.use_dense_fit = chooser


def window_of(cfg: ItemCFConfig, user_len: np.ndarray) -> int:
    """The window the fit uses: ``cfg.window`` capped at the longest sequence."""
    longest = int(user_len.max()) if user_len.shape[0] else 0
    return longest if cfg.window is None else min(cfg.window, longest)


def median_time(fn: Callable[[], Any], repeats: int, min_total_s: float = 1.0) -> float:
    """Median wall time of ``fn``: at least ``repeats`` runs, more (up to 50) for fast ``fn``."""
    return interleaved_medians({"fn": fn}, repeats, min_total_s)["fn"]


def interleaved_medians(
    fns: dict[str, Callable[[], Any]], repeats: int, min_total_s: float = 1.0
) -> dict[str, float]:
    """Median wall time of each function, run round-robin so machine noise hits all alike.

    At least ``repeats`` rounds; more (up to 50) while the fastest has not used ``min_total_s``.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    rounds = 0
    while rounds < repeats or (min(sum(t) for t in times.values()) < min_total_s and rounds < 50):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
        rounds += 1
    return {name: statistics.median(t) for name, t in times.items()}


def with_threads(n: int, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with ``n`` numba threads (restored afterwards)."""

    def run() -> None:
        before = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            fn()
        finally:
            numba.set_num_threads(before)

    return run


def first_call_seconds(cache_dir: str | None) -> float:
    """First ItemCF fit in a fresh interpreter (a fresh numba cache dir = full JIT compile)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", JIT_PROBE], env=env, check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def user_item_csr(data: Dataset) -> sp.csr_matrix:
    """Binary ``[n_users, n_items]`` float32 CSR of the positives (duplicates collapsed)."""
    pos = data.positives
    m = sp.csr_matrix(
        (
            np.ones(pos.height, dtype=np.float32),
            (pos["user_idx"].to_numpy(), pos["item_idx"].to_numpy()),
        ),
        shape=(data.n_users, data.n_items),
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def pairs_per_user(user_len: np.ndarray, window: int | None) -> np.ndarray:
    """``[n_users]`` ordered position pairs ``(p, q)`` with ``0 < |p - q| <= window``."""
    n = user_len.astype(np.int64)
    w = np.maximum(n - 1, 0) if window is None else np.minimum(window, np.maximum(n - 1, 0))
    return 2 * (w * n - w * (w + 1) // 2)


def ordered_pairs(user_len: np.ndarray, window: int | None) -> int:
    return int(pairs_per_user(user_len, window).sum())


def subsample_users(data: Dataset, users: np.ndarray, source: pl.DataFrame, items) -> Dataset:
    keep = data.user_vocab.decode(users)
    inter = source.filter(pl.col("user_id").is_in(keep.to_list()))
    return Dataset.build(inter, items)


def max_rel_diff(model: ItemCF, ref_idx: np.ndarray, ref_sim: np.ndarray) -> float:
    mine = model.neighbor_sim.astype(np.float64)
    ok = (ref_idx >= 0) & (model.neighbor_idx >= 0)
    if (model.neighbor_idx >= 0).sum() != (ref_idx >= 0).sum():
        return float("inf")
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(mine[ok] - ref_sim[ok]) / ref_sim[ok]))


def textbook_rounds(
    data: Dataset, cfg: ItemCFConfig, rounds: int, fun_per_round: int = 5
) -> tuple[float, float, tuple[np.ndarray, np.ndarray]]:
    """Median textbook and funnelrec fit times, alternated so both see the same machine load.

    Each round times ``fun_per_round`` funnelrec fits, then one textbook fit; a last batch of
    funnelrec fits closes the sequence. Returns ``(textbook_s, funnelrec_s, textbook_result)``.
    """
    rng = np.random.default_rng(0)
    ItemCF(cfg).fit(data, rng=rng)
    fun: list[float] = []
    text: list[float] = []
    ref: tuple[np.ndarray, np.ndarray] | None = None

    def fun_batch() -> None:
        for _ in range(fun_per_round):
            start = time.perf_counter()
            ItemCF(cfg).fit(data, rng=rng)
            fun.append(time.perf_counter() - start)

    for _ in range(rounds):
        fun_batch()
        start = time.perf_counter()
        ref = textbook_itemcf(data, cfg)
        text.append(time.perf_counter() - start)
    fun_batch()
    assert ref is not None
    return statistics.median(text), statistics.median(fun), ref


def bench_dataset(
    name: str, data: Dataset, source: pl.DataFrame, items, args: argparse.Namespace
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    _ = data.positives
    csr = user_item_csr(data)
    seq = build_sequences(data.positives, data.n_users, data.n_items)
    user_len = seq.user_len

    fns: dict[str, Callable[[], Any]] = {}
    for threads, suffix in ((args.threads, ""), (1, " 1 thread")):
        fns["implicit" + suffix] = lambda threads=threads: CosineRecommender(
            K=K, num_threads=threads
        ).fit(csr, show_progress=False)
        for label, cfg in CONFIGS.items():
            fns[label + suffix] = with_threads(
                threads, lambda cfg=cfg: ItemCF(cfg).fit(data, rng=rng)
            )
    for label, cfg in CONFIGS.items():  # the sparse kernel alone: the fit before dense.py
        fns[label + " sparse kernel"] = with_threads(
            args.threads, functools.partial(sparse_kernel_fit, cfg, data)
        )
    for fn in fns.values():  # warm-up
        fn()
    medians = interleaved_medians(fns, args.repeats)
    t_implicit = medians["implicit"]
    rows = []
    for label, cfg in CONFIGS.items():
        t_fun, t_fun_1 = medians[label], medians[label + " 1 thread"]
        pairs = ordered_pairs(user_len, cfg.window)
        # Calibrate the textbook speed on a small slice, then decide full run vs subsample.
        probe_users = rng.permutation(data.n_users)[: max(1, data.n_users // 50)]
        probe = subsample_users(data, probe_users, source, items)
        probe_seq = build_sequences(probe.positives, probe.n_users, probe.n_items)
        probe_pairs = max(1, ordered_pairs(probe_seq.user_len, cfg.window))
        start = time.perf_counter()
        textbook_itemcf(probe, cfg)
        per_pair = (time.perf_counter() - start) / probe_pairs
        predicted = per_pair * pairs
        scope = "all users"
        sub = data
        if predicted > args.textbook_budget_s:
            order = rng.permutation(data.n_users)
            cum = np.cumsum(pairs_per_user(user_len, cfg.window)[order])
            n_take = max(1, int(np.searchsorted(cum, args.textbook_budget_s / per_pair)))
            sub = subsample_users(data, order[:n_take], source, items)
            scope = f"random {n_take}/{data.n_users} users ({sub.positives.height} positives)"
        reps = 1 if predicted > 10 else min(3, args.repeats)
        t_text, t_fun_sub, ref = textbook_rounds(sub, cfg, reps)
        check = max_rel_diff(ItemCF(cfg).fit(sub, rng=rng), *ref)
        rows.append(
            {
                "dataset": name,
                "config": label,
                "positives": data.positives.height,
                "distinct_pairs_user_item": int(seq.item.shape[0]),
                "users": data.n_users,
                "items": data.n_items,
                "ordered_pairs": pairs,
                "funnelrec_s": t_fun,
                "funnelrec_1_thread_s": t_fun_1,
                "implicit_s": t_implicit,
                "implicit_1_thread_s": medians["implicit 1 thread"],
                "funnelrec_over_implicit": t_fun / t_implicit,
                "dense_fit": use_dense_fit(user_len, window_of(cfg, user_len), data.n_items),
                "sparse_kernel_s": medians[label + " sparse kernel"],
                "sparse_kernel_over_implicit": medians[label + " sparse kernel"] / t_implicit,
                "textbook_scope": scope,
                "textbook_repeats": reps,
                "textbook_s": t_text,
                "funnelrec_beside_textbook_s": t_fun_sub,
                "textbook_over_funnelrec": t_text / t_fun_sub,
                "max_rel_diff_vs_textbook": check,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--sim-interactions", type=int, default=1_000_000)
    parser.add_argument("--textbook-budget-s", type=float, default=120.0)
    parser.add_argument(
        "--datasets",
        default=DEFAULT_DATASETS,
        help="comma-separated: movielens-100k, simulator, ml-1m-shaped",
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=("passive", "default"),
        default="passive",
        help="OpenMP idle threads sleep (passive) or spin first (GOMP default); numba and "
        "implicit share the same libgomp, so this applies to both",
    )
    args = parser.parse_args()
    wanted = None if args.omp_wait_policy == "default" else "PASSIVE"
    if os.environ.get("OMP_WAIT_POLICY") != wanted and "_ITEMCF_BENCH_REEXEC" not in os.environ:
        # libgomp reads the policy once, when loaded (importing implicit): restart with it set.
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if wanted is not None:
            env["OMP_WAIT_POLICY"] = wanted
        env["_ITEMCF_BENCH_REEXEC"] = "1"
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    load_start = os.getloadavg()
    numba.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=ParameterWarning)  # implicit's own COO hand-off
    if not console.is_terminal:
        console.width = 180

    with tempfile.TemporaryDirectory() as cache:
        jit_compile = first_call_seconds(cache)
    jit_cached = first_call_seconds(None)
    console.print(
        f"threads: {args.threads} (numba and implicit); OMP_WAIT_POLICY: "
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset (GOMP default)')}; load average at start: "
        f"{load_start[0]:.2f}"
    )
    console.print(
        f"numba first call: "
        f"{jit_compile:.2f} s with a cold cache (JIT compile), {jit_cached:.2f} s cached"
    )

    rows: list[dict[str, Any]] = []
    for name in args.datasets.split(","):
        if name == "ml-1m-shaped":
            inter = movielens_1m_shaped()
            rows += bench_dataset(name, Dataset.build(inter), inter, None, args)
            continue
        tables = load_tables(name, sim_interactions=args.sim_interactions, positives_only=True)
        if tables is None:
            continue
        data = Dataset.build(tables.interactions, tables.items, tables.users)
        label = "ml-100k" if name != "simulator" else f"sim {args.sim_interactions / 1e6:g}M pos"
        rows += bench_dataset(label, data, tables.interactions, tables.items, args)

    render(
        f"ItemCF fit time (s), median of >= {args.repeats} runs, {args.threads} threads",
        [
            "dataset",
            "config",
            "positives",
            "pairs",
            "implicit",
            "funnelrec",
            "funnelrec / implicit",
            "sparse kernel / implicit",
            "textbook",
            "funnelrec'",
            "textbook / funnelrec'",
            "max rel diff",
        ],
        [
            [
                r["dataset"],
                r["config"],
                r["positives"],
                r["ordered_pairs"],
                r["implicit_s"],
                r["funnelrec_s"],
                f"{r['funnelrec_over_implicit']:.2f}" + (" (dense)" if r["dense_fit"] else ""),
                f"{r['sparse_kernel_over_implicit']:.2f}",
                r["textbook_s"],
                r["funnelrec_beside_textbook_s"],
                f"{r['textbook_over_funnelrec']:.0f}",
                f"{r['max_rel_diff_vs_textbook']:.1e}",
            ]
            for r in rows
        ],
    )
    console.print(
        "funnelrec: timed alternating with implicit; funnelrec': timed alternating with the "
        "textbook runs (same data, same load). max rel diff: funnelrec vs textbook similarities."
    )
    for r in rows:
        if r["textbook_scope"] != "all users":
            console.print(
                f"{r['dataset']} {r['config']}: textbook and funnelrec' on {r['textbook_scope']}"
            )
    load_end = os.getloadavg()
    console.print(f"load average at end: {load_end[0]:.2f} (1 min; the machine is shared)")
    ok_impl = all(r["funnelrec_over_implicit"] <= TARGET_VS_IMPLICIT for r in rows)
    ok_text = all(r["textbook_over_funnelrec"] >= TARGET_VS_TEXTBOOK for r in rows)
    console.print(
        f"funnelrec/implicit <= {TARGET_VS_IMPLICIT}: {'PASS' if ok_impl else 'FAIL'}; "
        f"textbook/funnelrec >= {TARGET_VS_TEXTBOOK:.0f}: {'PASS' if ok_text else 'FAIL'}"
    )
    write_json(
        NAME if args.datasets == DEFAULT_DATASETS else f"{NAME}_{args.datasets.replace(',', '_')}",
        {
            "threads": args.threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "load_average_1min": {"start": load_start[0], "end": load_end[0]},
            "repeats": args.repeats,
            "neighbors": K,
            "jit_compile_s": jit_compile,
            "jit_cached_first_call_s": jit_cached,
            "targets": {
                "funnelrec_over_implicit_max": TARGET_VS_IMPLICIT,
                "textbook_over_funnelrec_min": TARGET_VS_TEXTBOOK,
            },
            "pass": {"vs_implicit": ok_impl, "vs_textbook": ok_text},
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()

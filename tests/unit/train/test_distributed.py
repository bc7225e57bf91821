"""Data-parallel training: shards, gathers, reductions, and 2 workers == 1 process.

The end-to-end tests launch ``torchrun`` with 2 gloo workers on the CPU and compare the loss
of every epoch, the trained vectors and a quality metric with the same run in this process:
the two-tower (in-batch negatives gathered across workers, uniform and hard negatives, id
dropout; dense and sparse embeddings) and the default ranking model (MMoE with learnt
uncertainty weights).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from funnelrec.train.distributed import (
    backend_for,
    gather_rows,
    is_distributed,
    is_main_process,
    process_group,
    reduce_row_means,
    shard_bounds,
    shard_rows,
    world_size,
)
from support.ddp_cases import CASES

TESTS = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("n", [2, 5, 61, 1024])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_partition_the_batch_in_order(n: int, world: int) -> None:
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_shard_rows_slices_row_tensors_and_keeps_the_rest() -> None:
    batch = {"x": torch.arange(10).reshape(5, 2), "y": torch.arange(5), "c": torch.ones(3)}
    shard = shard_rows(batch, 1, 2)
    assert shard["x"].tolist() == [[4, 5], [6, 7], [8, 9]]
    assert shard["y"].tolist() == [2, 3, 4]
    assert shard["c"].shape == (3,)


def test_outside_torchrun_everything_is_one_process() -> None:
    with process_group("cpu") as worker:
        assert (worker.rank, worker.world_size, worker.backend) == (0, 1, None)
        assert not is_distributed() and is_main_process() and world_size() == 1
        x = torch.randn(4, 3, requires_grad=True)
        assert gather_rows(x) is x
        means = reduce_row_means({"loss": torch.tensor(2.0)}, rows_here=4, rows_global=4)
        assert means == {"loss": 2.0}
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda")) == "nccl"


def _torchrun(out: Path, cases: list[str]) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(TESTS / "support" / "ddp_worker.py"),
        str(out),
        *cases,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One torchrun launch for every case (starting workers costs more than the cases)."""
    out = tmp_path_factory.mktemp("ddp") / "results.json"
    return _torchrun(out, list(CASES))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_workers_reproduce_single_process_training(
    case: str, two_workers: dict[str, Any]
) -> None:
    torch.set_num_threads(1)
    single = CASES[case]()
    distributed = two_workers[case]
    assert two_workers["world_size"] == 2
    assert distributed["samples"] == single["samples"]  # the same global batches
    np.testing.assert_allclose(distributed["epoch_loss"], single["epoch_loss"], rtol=1e-4)
    np.testing.assert_allclose(distributed["vectors"], single["vectors"], atol=1e-3)
    assert distributed["metric"] == pytest.approx(single["metric"], abs=1e-3)
    assert distributed["replica_gap"] == 0.0  # the workers' models stayed identical
    # and training did learn: the loss fell
    assert single["epoch_loss"][-1] < single["epoch_loss"][0]

"""Run cases of ``support.ddp_cases`` under ``torchrun``; rank 0 writes their results.

Usage: ``torchrun --nproc-per-node 2 tests/support/ddp_worker.py OUT.json CASE [CASE ...]``
(with ``tests`` on ``PYTHONPATH``). One launch runs several cases: starting the workers
(importing torch and funnelrec twice) costs more than the small cases themselves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from funnelrec.train.distributed import is_main_process, process_group, world_size
from support.ddp_cases import CASES


def main() -> None:
    out, cases = Path(sys.argv[1]), sys.argv[2:]
    torch.set_num_threads(1)
    with process_group("cpu"):
        results: dict[str, object] = {case: CASES[case]() for case in cases}
        results["world_size"] = world_size()
        if is_main_process():
            out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()

"""Torch's CPU thread count for one block of work, restored afterwards.

Small models (a few-million-parameter sequence model, batches of ~10k positions) gain little
from intra-op threads, and on a busy machine the threads' spin-waiting loses badly: a
SASRec step on MovieLens-100k took 2.1 s with 2 threads and 0.6 s with 1 on the shared
2-core box while other jobs ran, and the unit tests' tiny fit 130 s against 1 s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op CPU threads (None = leave them as they are).

    Example:
        >>> before = torch.get_num_threads()
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

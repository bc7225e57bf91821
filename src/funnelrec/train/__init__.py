"""The one training loop (model, task and loop kept separate) and its callbacks.

Only the torch-free configuration is exported here, so that importing a config that embeds
:class:`TrainLoopConfig` does not import torch. The loop itself lives in
:mod:`funnelrec.train.loop` (``from funnelrec.train.loop import train``).
"""

from funnelrec.train.config import Activation, TrainLoopConfig

__all__ = ["Activation", "TrainLoopConfig"]

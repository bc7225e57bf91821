"""Data layer: vocabularies, the Dataset, loaders, converters, the simulator and splits."""

from funnelrec.data.dataset import Dataset
from funnelrec.data.vocab import Vocabulary

__all__ = ["Dataset", "Vocabulary"]

"""Experiment configuration: typed, frozen, loaded from TOML with ``--set`` overrides."""

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.config.loading import load_config

__all__ = ["ExperimentConfig", "load_config"]

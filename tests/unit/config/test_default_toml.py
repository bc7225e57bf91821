"""configs/default.toml is the documented default: it must load to exactly ExperimentConfig()."""

from pathlib import Path

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.config.loading import load_config

DEFAULT_TOML = Path(__file__).resolve().parents[3] / "configs" / "default.toml"


def test_default_toml_equals_code_defaults() -> None:
    assert load_config(DEFAULT_TOML) == ExperimentConfig()


def test_default_toml_lists_every_default_channel() -> None:
    import tomllib

    tree = tomllib.loads(DEFAULT_TOML.read_text())
    assert set(tree["recall"]["channels"]) == set(ExperimentConfig().recall.channels)
    assert tree["recall"]["merge"]["quotas"] == ExperimentConfig().recall.merge.quotas

from pathlib import Path

import pytest

from funnelrec.config import load_config
from funnelrec.config.loading import parse_override
from funnelrec.errors import ConfigError


def test_defaults_are_valid() -> None:
    cfg = load_config()
    assert cfg.split.kind == "temporal"
    assert set(cfg.recall.merge.quotas) <= set(cfg.recall.channels)


def test_override_switches_kind_and_sets_fields() -> None:
    cfg = load_config(overrides=["split.kind=random_ratio", "split.seed=7"])
    assert cfg.split.kind == "random_ratio"
    assert cfg.split.seed == 7


def test_override_nested_channel_value() -> None:
    cfg = load_config(overrides=["recall.channels.popular.half_life_s=3600"])
    assert cfg.recall.channels["popular"].half_life_s == 3600


def test_unknown_key_fails_loudly() -> None:
    with pytest.raises(ConfigError, match="split.test_fractoin"):
        load_config(overrides=["split.test_fractoin=0.2"])


def test_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="test_fraction"):
        load_config(overrides=["split.test_fraction=2"])


def test_file_replaces_channels(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(
        '[recall.channels.pop]\nkind = "popular"\nmode = "global"\n'
        "[recall.merge]\nk = 50\nquotas = { pop = 50 }\n"
    )
    cfg = load_config(path)
    assert list(cfg.recall.channels) == ["pop"]


def test_quota_for_missing_channel(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown channels"):
        load_config(overrides=["recall.merge.quotas.nope=3"])


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[[")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_parse_override() -> None:
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=hello") == (["a"], "hello")
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_none_switches_an_optional_value_off(tmp_path: Path) -> None:
    cfg = load_config(overrides=["recall.channels.itemcf.pair_half_life_s=none"])
    assert cfg.recall.channels["itemcf"].pair_half_life_s is None


def test_shipped_configs_load() -> None:
    root = Path(__file__).resolve().parents[3] / "configs"
    for path in sorted(root.glob("*.toml")):
        load_config(path)

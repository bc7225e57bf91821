"""Finding Java: JAVA_HOME first, then PATH; without either the Spark engine stops with a
one-line ConfigError instead of pyspark's launcher error. No Spark session is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelrec.errors import ConfigError
from funnelrec.spark.options import SparkOptions
from funnelrec.spark.session import java_available, java_executable, start_session


def test_java_home_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert java_executable() == java


def test_no_java_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java on it
    assert not java_available()
    with pytest.raises(ConfigError, match="openjdk-17-jre-headless"):
        start_session(SparkOptions())

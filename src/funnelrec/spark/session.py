"""Starting a Spark session (and finding the Java runtime it needs)."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from funnelrec.errors import ConfigError
from funnelrec.spark.options import SparkOptions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

APP_NAME = "funnelrec"
LOCAL_PARTITIONS_PER_CORE = 4
"""Shuffle partitions per core of a ``local`` master when none are configured."""
PANDAS_NOTE = "PySpark does not yet fully support pandas"
"""pyspark 4.3's FutureWarning whenever it checks the pandas version (pandas 3 is installed for
the test tools): the engine moves results through Arrow, never pandas, so it is only noise."""


def java_executable() -> Path | None:
    """The ``java`` Spark would launch: ``$JAVA_HOME/bin/java`` when set, else ``java`` on
    ``PATH`` (what pyspark's launcher looks for); None when neither exists."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file():
            return candidate
    found = shutil.which("java")
    return Path(found) if found else None


def java_available() -> bool:
    """Whether a Java runtime is there for Spark (install: ``apt-get install
    openjdk-17-jre-headless``)."""
    return java_executable() is not None


def start_session(options: SparkOptions) -> SparkSession:
    """A Spark session on ``options.master`` (an existing one in this process is reused).

    The web UI and the console progress bar are off (batch jobs, logs stay readable); Arrow
    carries results back to the driver (``DataFrame.toArrow``).

    Raises:
        ConfigError: no Java runtime, or pyspark is not installed.
    """
    if not java_available():
        raise ConfigError(
            "the Spark engine needs Java 17+ on PATH or in JAVA_HOME "
            "(e.g. apt-get install openjdk-17-jre-headless)"
        )
    warnings.filterwarnings("ignore", message=PANDAS_NOTE, category=FutureWarning)
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover - pyspark is a declared dependency
        raise ConfigError("the Spark engine needs pyspark: pip install pyspark") from None
    builder = (
        SparkSession.builder.master(options.master)
        .appName(APP_NAME)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if options.driver_memory is not None:
        builder = builder.config("spark.driver.memory", options.driver_memory)
    partitions = options.shuffle_partitions
    if partitions is None and options.master.startswith("local"):
        # Spark's 200 suit a cluster; on one machine each tiny task costs more than it does.
        partitions = LOCAL_PARTITIONS_PER_CORE * (os.cpu_count() or 1)
    if partitions is not None:
        builder = builder.config("spark.sql.shuffle.partitions", str(partitions))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session

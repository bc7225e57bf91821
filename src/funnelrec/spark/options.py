"""How to reach Spark: the settings ``funnelrec train --engine spark`` passes down (no pyspark
import here, so the pipeline can name them without loading Spark)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MASTER = "local[*]"


@dataclass(frozen=True)
class SparkOptions:
    """Settings of the Spark session the ItemCF / Swing fits run on.

    Attributes:
        master: the Spark master URL (``local[*]``: every core of this machine;
            ``spark://host:7077``, ``yarn``, ``k8s://...`` for a cluster).
        driver_memory: ``spark.driver.memory`` (e.g. ``"8g"``); None keeps Spark's default.
            In ``local`` mode the driver is also the only executor, so this is its heap.
        shuffle_partitions: ``spark.sql.shuffle.partitions``; None: 4 per core of this machine
            for a ``local`` master, Spark's default (200) for a cluster.
        interactions: the data folder's interactions (a Parquet file or a hive-partitioned
            folder of them) for Spark to read itself; None (or a CSV) stages the Dataset's
            positives as Parquet instead (:mod:`funnelrec.spark.frames`).
        staging_dir: where staged Parquet goes (must be readable by every executor on a
            cluster); None: a temporary folder on this machine.
    """

    master: str = DEFAULT_MASTER
    driver_memory: str | None = None
    shuffle_partitions: int | None = None
    interactions: Path | None = None
    staging_dir: Path | None = None

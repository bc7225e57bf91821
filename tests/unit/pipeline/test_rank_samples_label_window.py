"""rank.samples.label_window_s: every task's window is cut to the label window (censored
labels, as a training job at that point would have seen them)."""

from __future__ import annotations

import polars as pl

from funnelrec.pipeline.rank_samples import sample_config
from funnelrec.rank.config import RankConfig

LOG = pl.DataFrame({"event": ["impression", "click", "order"]})


def windows(label_window_s: float | None, source: str) -> dict[str, float | None]:
    rank = RankConfig.model_validate({"samples": {"label_window_s": label_window_s}})
    return {t: v.window_s for t, v in sample_config(rank, LOG, source).tasks.items()}


def test_the_label_window_caps_every_task_and_none_changes_nothing() -> None:
    plain = windows(None, "impressions")
    capped = windows(3600.0, "impressions")
    assert set(plain) == set(capped) == {"click", "order"}
    for task, window in plain.items():
        assert capped[task] == (3600.0 if window is None else min(window, 3600.0))
    assert windows(3600.0, "recall") == {"click": 3600.0, "order": 3600.0}
    assert windows(None, "recall") == {"click": None, "order": None}

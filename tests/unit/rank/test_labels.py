"""Tasks and the one labeller: task selection, attribution and windows on direct inputs."""

import logging

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from funnelrec.rank.labels import (
    DEFAULT_TASKS,
    TaskLabel,
    label_exposures,
    task_parents,
    tasks_for_events,
)

H = 3600
T = 1_700_000_000


def _frame(rows: list[tuple], cols: list[str]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=cols, orient="row").with_columns(
        pl.col("user_idx").cast(pl.Int32),
        pl.col("item_idx").cast(pl.Int32),
        pl.col("timestamp").cast(pl.Int64),
    )


def _exposures(rows: list[tuple]) -> pl.DataFrame:
    """Rows (user_idx, item_idx, timestamp)."""
    return _frame(rows, ["user_idx", "item_idx", "timestamp"])


def _events(rows: list[tuple]) -> pl.DataFrame:
    """Rows (user_idx, item_idx, timestamp, event)."""
    return _frame(rows, ["user_idx", "item_idx", "timestamp", "event"])


def test_tasks_for_events() -> None:
    assert list(tasks_for_events(["impression", "click", "cart", "order"])) == list(DEFAULT_TASKS)
    taobao = tasks_for_events(["order", "fav", "cart", "click"])
    assert list(taobao) == ["click", "fav", "cart", "order"]
    assert list(tasks_for_events(["impression", "click", "like", "watch"])) == ["click", "like"]
    assert tasks_for_events(["rating"])["positive"].events == ("rating",)
    with pytest.raises(ValueError, match="no event besides"):
        tasks_for_events(["impression"])
    with pytest.raises(ValidationError):
        TaskLabel(events=("impression",))


def test_negative_indices_never_match(caplog: pytest.LogCaptureFixture) -> None:
    exp = pl.DataFrame({"user_idx": [0, 0], "item_idx": [-1, -1], "timestamp": [T, T + 1]})
    ev = _events([(0, 1, T + 5, "click")]).with_columns(
        pl.lit(-1, dtype=pl.Int32).alias("item_idx")
    )
    with caplog.at_level(logging.WARNING, logger="funnelrec.rank.labels"):
        labels = label_exposures(exp, ev, {"click": TaskLabel(events=("click",))})
    assert labels["click"].tolist() == [0.0, 0.0]
    assert "negative user_idx/item_idx" in caplog.text


def test_last_attribution_credits_only_the_latest_exposure() -> None:
    exp = _exposures([(0, 1, T), (0, 1, T + 60), (0, 2, T), (1, 1, T)])
    ev = _events([(0, 1, T + 90, "click"), (1, 1, T - 5, "click")])  # user 1: before exposure
    tasks = {"click": TaskLabel(events=("click",), window_s=H)}
    last = label_exposures(exp, ev, tasks, "last")["click"]
    every = label_exposures(exp, ev, tasks, "all")["click"]
    assert last.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert every.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert last.dtype == np.float32


def test_window_bounds_are_inclusive_and_none_means_the_rest_of_the_log() -> None:
    exp = _exposures([(0, 1, T), (0, 2, T)])
    ev = _events([(0, 1, T + H, "order"), (0, 2, T + H + 1, "order")])
    hour = label_exposures(exp, ev, {"order": TaskLabel(events=("order",), window_s=H)})
    rest = label_exposures(exp, ev, {"order": TaskLabel(events=("order",), window_s=None)})
    assert hour["order"].tolist() == [1.0, 0.0]
    assert rest["order"].tolist() == [1.0, 1.0]


def test_absent_task_event_warns_and_labels_zero(caplog: pytest.LogCaptureFixture) -> None:
    exp = _exposures([(0, 1, T)])
    ev = _events([(0, 1, T + 1, "click")])
    with caplog.at_level(logging.WARNING, logger="funnelrec.rank.labels"):
        labels = label_exposures(exp, ev, {"like": TaskLabel(events=("like",))})
    assert labels["like"].tolist() == [0.0]
    assert "'like'" in caplog.text


# ------------------------------------------------------------------ post-click labels (ESMM)
FUNNEL = {
    "click": TaskLabel(events=("click",), window_s=H, after=None),
    "cart": TaskLabel(events=("cart",), window_s=24 * H),
    "order": TaskLabel(events=("order",), window_s=24 * H),
}


def test_catalogue_tasks_follow_click() -> None:
    tasks = tasks_for_events(["click", "like", "follow", "comment", "forward", "fav", "cart"])
    assert tasks["click"].after is None
    assert {t.after for name, t in tasks.items() if name != "click"} == {"click"}
    assert tasks_for_events(["order"])["order"].after == "click"  # no click task: inert
    assert tasks_for_events(["rating"])["positive"].after is None
    assert DEFAULT_TASKS["click"].after is None and DEFAULT_TASKS["order"].after == "click"


def test_post_click_label_needs_a_click_on_the_same_exposure() -> None:
    # Item 1: clicked then ordered. Item 2: ordered without a click (Taobao-style). Item 3:
    # clicked 2 h after the exposure (outside the 1 h click window), ordered at 3 h.
    exp = _exposures([(0, 1, T), (0, 2, T), (0, 3, T)])
    ev = _events(
        [
            (0, 1, T + 60, "click"),
            (0, 1, T + 600, "order"),
            (0, 2, T + 600, "order"),
            (0, 2, T + 700, "cart"),
            (0, 3, T + 2 * H, "click"),
            (0, 3, T + 3 * H, "order"),
        ]
    )
    labels = label_exposures(exp, ev, FUNNEL)
    assert labels["click"].tolist() == [1.0, 0.0, 0.0]
    assert labels["order"].tolist() == [1.0, 0.0, 0.0]
    assert labels["cart"].tolist() == [0.0, 0.0, 0.0]
    unconditioned = {t: v.model_copy(update={"after": None}) for t, v in FUNNEL.items()}
    assert label_exposures(exp, ev, unconditioned)["order"].tolist() == [1.0, 1.0, 1.0]
    # Without the parent task among the tasks the child is labelled on its own events.
    alone = label_exposures(exp, ev, {"order": FUNNEL["order"]})
    assert alone["order"].tolist() == [1.0, 1.0, 1.0]


def test_post_click_condition_uses_the_same_exposure_under_last_attribution() -> None:
    # Shown at T (clicked at T + 10) and again at T + 100, ordered at T + 200: the order is
    # credited to the second exposure, which was not clicked, so no post-click positive.
    exp = _exposures([(0, 1, T), (0, 1, T + 100)])
    ev = _events([(0, 1, T + 10, "click"), (0, 1, T + 200, "order")])
    labels = label_exposures(exp, ev, FUNNEL, "last")
    assert labels["click"].tolist() == [1.0, 0.0]
    assert labels["order"].tolist() == [0.0, 0.0]
    every = label_exposures(exp, ev, FUNNEL, "all")
    assert every["order"].tolist() == [1.0, 0.0]


def test_after_chains_self_reference_and_cycles(caplog: pytest.LogCaptureFixture) -> None:
    exp = _exposures([(0, 1, T), (0, 2, T), (0, 3, T)])
    ev = _events(
        [
            (0, 1, T + 5, "click"),
            (0, 1, T + 6, "cart"),
            (0, 1, T + 7, "order"),
            (0, 2, T + 5, "click"),
            (0, 2, T + 7, "order"),  # ordered without a cart
            (0, 3, T + 6, "cart"),
            (0, 3, T + 7, "order"),  # no click
        ]
    )
    chain = {
        "order": TaskLabel(events=("order",), after="cart"),  # child before its parents
        "cart": TaskLabel(events=("cart",), after="click"),
        "click": TaskLabel(events=("click",)),  # default after="click": itself, ignored
    }
    assert task_parents(chain) == {"click": None, "cart": "click", "order": "cart"}
    with caplog.at_level(logging.INFO, logger="funnelrec.rank.labels"):
        labels = label_exposures(exp, ev, chain)
    assert list(labels) == ["order", "cart", "click"]  # the caller's order
    assert labels["click"].tolist() == [1.0, 1.0, 0.0]
    assert labels["cart"].tolist() == [1.0, 0.0, 0.0]
    assert labels["order"].tolist() == [1.0, 0.0, 0.0]
    assert "task 'order': 2 of 3 positives have no 'cart'" in caplog.text
    cycle = {"a": TaskLabel(events=("x",), after="b"), "b": TaskLabel(events=("y",), after="a")}
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        label_exposures(exp, ev, cycle)


def _brute_force_labels(
    exp: list[tuple[int, int, int]],
    ev: list[tuple[int, int, int]],
    window_s: int | None,
    attribution: str,
) -> list[float]:
    """The window and attribution rules, exposure by exposure, without any indexing."""
    out = []
    for row, (user, item, ts) in enumerate(exp):
        if user < 0 or item < 0:
            out.append(0.0)
            continue
        bound = float("inf")
        if attribution == "last":  # the next exposure of the pair (ties: by row) minus 1
            later = [
                t
                for r, (u, i, t) in enumerate(exp)
                if (u, i) == (user, item) and (t, r) > (ts, row)
            ]
            bound = min(later, default=float("inf")) - 1
        end = min(bound, ts + window_s if window_s is not None else float("inf"))
        hit = any((u, i) == (user, item) and ts <= t <= end for u, i, t in ev)
        out.append(float(hit))
    return out


@pytest.mark.parametrize("attribution", ["last", "all"])
@pytest.mark.parametrize("window_s", [None, 30])
def test_labels_equal_the_rules_applied_one_exposure_at_a_time(
    attribution: str, window_s: int | None
) -> None:
    """Random exposures with repeated pairs, equal times and invalid ids; most pairs have no
    event, as in an evaluation's candidates (the labeller indexes only the pairs with one)."""
    rng = np.random.default_rng(7)
    exp = [
        (int(u), int(i), T + int(t))
        for u, i, t in zip(
            rng.integers(-1, 6, 300),
            rng.integers(-1, 25, 300),
            rng.integers(0, 100, 300),
            strict=True,
        )
    ]
    ev = [
        (int(u), int(i), T + int(t))
        for u, i, t in zip(
            rng.integers(0, 6, 40),
            rng.integers(0, 25, 40),
            rng.integers(-20, 140, 40),
            strict=True,
        )
    ]
    labels = label_exposures(
        _exposures(exp),
        _events([(*e, "click") for e in ev]),
        {"click": TaskLabel(events=("click",), window_s=window_s)},
        attribution,  # type: ignore[arg-type]
    )["click"]
    expected = _brute_force_labels(exp, ev, window_s, attribution)
    assert 0 < sum(expected) < len(exp) / 2
    assert labels.tolist() == expected

"""The positive-event rule: one definition for polars frames and plain lists."""

from __future__ import annotations

import polars as pl
import pytest

from funnelrec.data.events import NON_POSITIVE_EVENTS, is_positive, positive_expr

EVENTS = ["impression", "click", "cart", "order", "watch"]


@pytest.mark.parametrize("rule", [None, ("order",), ("click", "order"), ()])
def test_expression_and_list_forms_agree(rule: tuple[str, ...] | None) -> None:
    frame = pl.DataFrame({"event": EVENTS}).select(positive_expr(rule))["event"].to_list()
    assert is_positive(EVENTS, rule).tolist() == frame


def test_default_rule_is_everything_but_impressions() -> None:
    assert NON_POSITIVE_EVENTS == ("impression",)
    assert is_positive(EVENTS, None).tolist() == [False, True, True, True, True]
    assert is_positive(EVENTS, ("order",)).tolist() == [False, False, False, True, False]
    assert is_positive([], None).shape == (0,)

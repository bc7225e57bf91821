from __future__ import annotations

import math

from funnelrec.eval.html import format_cell, format_number, html_table, is_count_column


def test_numbers_read_like_a_person_wrote_them() -> None:
    assert format_number(0.0963290537) == "0.09633"
    assert format_number(108.43813188948843) == "108.4"
    assert format_number(1234567.8) == "1,234,568"
    assert format_number(23549) == "23,549"
    assert format_number(math.nan) == "n/a"
    assert format_number(True) == "yes"


def test_counts_are_integers_or_one_decimal_when_they_are_a_mean() -> None:
    assert format_number(697.5704, count=True) == "697.6"
    assert format_number(300.0, count=True) == "300"
    assert is_count_column("candidates") and is_count_column("n_queries")
    assert is_count_column("train_samples") and not is_count_column("candidate_recall")


def test_cells_render_intervals_mappings_and_missing_values() -> None:
    assert format_cell([0.0287813, 0.0433434]) == "[0.02878, 0.04334]"
    assert format_cell({"theta": 0.95}) == "theta 0.95"
    assert format_cell(None) == "-"
    assert format_cell("<b>") == "&lt;b&gt;"


def test_a_missing_cell_is_explained_under_the_table() -> None:
    table = html_table([{"stage": "recall", "ndcg@10": None}], note="no top-K order")
    assert "<td>-</td>" in table and "no top-K order" in table and "None" not in table
    assert "note" not in html_table([{"stage": "merge", "ndcg@10": 0.1}])

"""What every HTML report shares: figures (saved and embedded), an empty-plot notice, a table
whose cells read like a person wrote them (counts with thousands separators, at most 4
significant digits, intervals as ``[low, high]``, a missing value as a footnoted dash)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MISSING = "-"
TABLE_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 80em; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; }
th:first-child, td:first-child { text-align: left; }
p.note { font-size: 0.85em; color: #555; margin-top: -0.6em; }
"""
"""The page and table style every report shares (numbers right-aligned, a note under a table)."""
# Column names that hold counts: shown as integers, or with one decimal when they are a mean
# (e.g. candidates per query), never as a metric's 4 significant digits.
COUNT_COLUMNS = frozenset({"candidates", "positives", "queries", "samples", "users", "items"})


def save_figure(fig: Figure, path: Path) -> Path:
    """Render ``fig`` to ``path`` (PNG, no display needed)."""
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def embedded_image(path: Path, alt: str) -> str:
    """An ``<img>`` holding the PNG at ``path`` as a data URI: the page stays one file that
    can be mailed or attached without its folder."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def empty_figure(fig: Figure, text: str) -> None:
    """Say in the plot's place why there is nothing to plot."""
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def is_count_column(column: str) -> bool:
    """``candidates``, ``n_queries``, ``n queries``, ``train_samples``... (see COUNT_COLUMNS)."""
    name = column.lower().replace(" ", "_")
    return name.startswith("n_") or name.split("_")[-1] in COUNT_COLUMNS


def format_number(value: float, count: bool = False) -> str:
    """A number as a table shows it.

    Example:
        >>> [format_number(v) for v in (0.0963290537, 8.7089194, 1234567.8, 0.0, 12)]
        ['0.09633', '8.709', '1,234,568', '0', '12']
        >>> [format_number(v, count=True) for v in (697.5704, 300.0, 45210.2)]
        ['697.6', '300', '45,210']
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value == int(value) and (count or abs(value) >= 1000):
        return f"{value:,.0f}"
    if abs(value) >= 1000:  # 4 significant digits would read as 1.235e+06: round to units
        return f"{value:,.0f}"
    if count:  # a mean count (candidates per query): one decimal says enough
        return f"{value:,.1f}"
    return f"{value:.4g}"


def format_interval(low: float, high: float) -> str:
    """``[low, high]`` with each end as :func:`format_number` writes it."""
    return f"[{format_number(low)}, {format_number(high)}]"


def format_cell(value: Any, count: bool = False) -> str:
    """Any metrics.json value as escaped cell text (``None`` -> :data:`MISSING`)."""
    if value is None:
        return MISSING
    if isinstance(value, int | float):
        return format_number(value, count)
    if isinstance(value, Mapping):  # e.g. re-ranker params {"theta": 0.95} -> "theta 0.95"
        return ", ".join(f"{html.escape(str(k))} {format_cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        if len(value) == 2 and all(isinstance(v, int | float) for v in value):
            return format_interval(value[0], value[1])
        return ", ".join(format_cell(v) for v in value)
    return html.escape(str(value))


def html_table(
    rows: list[dict[str, Any]],
    note: str = "not measured for this row",
    counts: Collection[str] = (),
) -> str:
    """Rows of dicts (the first row's keys are the columns) as an HTML table.

    Cells go through :func:`format_cell`; a column named like a count (or listed in
    ``counts``) is formatted as one. When a cell is missing, ``note`` explains the dash in a
    footnote under the table.
    """
    if not rows:
        return "<p>(none)</p>"
    columns = list(rows[0])
    count = {c: c in counts or is_count_column(c) for c in columns}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{format_cell(row.get(c), count[c])}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if any(row.get(c) is None for row in rows for c in columns):
        table += f'<p class="note">{MISSING} : {html.escape(note)}</p>'
    return table


__all__ = [
    "MISSING",
    "embedded_image",
    "empty_figure",
    "format_cell",
    "format_interval",
    "format_number",
    "html_table",
    "is_count_column",
    "save_figure",
]

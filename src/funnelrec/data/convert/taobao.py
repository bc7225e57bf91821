"""Taobao UserBehavior (Alibaba Tianchi dataset 649): ``UserBehavior.csv``, no header.

Columns ``user_id, item_id, category_id, behavior_type, timestamp`` (unix seconds). Behaviours
map to events ``pv -> "click"``, ``cart -> "cart"``, ``fav -> "fav"``, ``buy -> "order"``
(``value`` = 1.0); any other behaviour is an error. The items table holds each item's
``category`` (the first one seen). A line missing its timestamp (the official file's head
samples end mid-line) is dropped and counted. Events outside the official window
(2017-11-25 .. 2017-12-03, China time) are kept and counted in the notes: filtering them is
a modelling choice.
"""

from __future__ import annotations

from pathlib import Path

from funnelrec.data.convert._common import check_values, require_dir, require_file
from funnelrec.data.io import RawTables
from funnelrec.data.text_table import read_text_table
from funnelrec.data.validate import coerce_table
from funnelrec.schema import INTERACTIONS

FORMAT = "taobao"
FILE = "UserBehavior.csv"
EVENTS: dict[str, str] = {"pv": "click", "cart": "cart", "fav": "fav", "buy": "order"}
"""``behavior_type`` -> canonical event."""

WINDOW: tuple[int, int] = (1511539200, 1512316800)
"""Official logging window [2017-11-25 00:00, 2017-12-04 00:00) UTC+8, as unix seconds."""


def read(src: Path) -> RawTables:
    """Read a Taobao UserBehavior folder into canonical tables.

    Args:
        src: the folder holding ``UserBehavior.csv``, or the CSV file itself (any name).

    Returns:
        Interactions and items (``category``); no users table.

    Raises:
        DataError: the file is missing or a line is malformed (named with row and column).
    """
    folder = require_dir(src, FORMAT)
    path = Path(src) if Path(src).is_file() else require_file(folder, FILE, FORMAT)
    raw, row_of = read_text_table(
        path, columns=("user_id", "item_id", "category", "behavior_type", "timestamp")
    )
    behavior = raw["behavior_type"].str.strip_chars()
    check_values(behavior, tuple(EVENTS), path=path, row_of=row_of)
    table, report = coerce_table(
        raw.select(
            "user_id",
            "item_id",
            "timestamp",
            behavior.replace_strict(EVENTS, default=None).alias("event"),
            "category",
        ),
        INTERACTIONS,
        path=str(path),
        row_of=row_of,
        defaults={"value": 1.0},
        source_names={"event": "behavior_type", "category": "category_id"},
    )
    items = (
        table.select("item_id", "category")
        .drop_nulls("category")
        .unique("item_id", keep="first", maintain_order=True)
    )
    inter = table.drop("category")
    outside = int((~inter["timestamp"].is_between(WINDOW[0], WINDOW[1], closed="left")).sum())
    notes = (
        f"{outside:,} events fall outside the official window 2017-11-25..2017-12-03 (UTC+8); kept",
    )
    return RawTables(inter, items, None, (report,), notes)

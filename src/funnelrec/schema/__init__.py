"""Column names and the tables passed between stages, declared once."""

from funnelrec.schema.tables import (
    CANDIDATES,
    INTERACTIONS,
    ITEMS,
    RANKED,
    USERS,
    ColumnSpec,
    TableSpec,
    check_schema,
    column_types,
)

__all__ = [
    "CANDIDATES",
    "INTERACTIONS",
    "ITEMS",
    "RANKED",
    "USERS",
    "ColumnSpec",
    "TableSpec",
    "check_schema",
    "column_types",
]

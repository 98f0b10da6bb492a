"""The compare view: chosen entries of one task on the same two plots, and their points as a
table (HTML, CSV and a LaTeX `tabular`).
"""

from web.views.compare.exports import latex_escape, table_csv, table_latex
from web.views.compare.query import (
    MAX_ENTRIES,
    PICK_LIST,
    UNITS,
    CompareQuery,
    Scale,
    parse_compare_query,
)
from web.views.compare.table import (
    CompareTable,
    CompareView,
    DifferenceText,
    Paired,
    PairedRow,
    PickOption,
    TableColumn,
    TableRow,
    compare_table,
    counter_versions,
)
from web.views.compare.view import compare_view, export_table, paired_differences

__all__ = [
    "MAX_ENTRIES",
    "PICK_LIST",
    "UNITS",
    "CompareQuery",
    "CompareTable",
    "CompareView",
    "DifferenceText",
    "Paired",
    "PairedRow",
    "PickOption",
    "Scale",
    "TableColumn",
    "TableRow",
    "compare_table",
    "compare_view",
    "counter_versions",
    "export_table",
    "latex_escape",
    "paired_differences",
    "parse_compare_query",
    "table_csv",
    "table_latex",
]

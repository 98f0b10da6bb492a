"""The compare table as CSV and as a LaTeX `table` (a `tabular`; the caption names the counter)."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from core.text import csv_cell
from web.views.compare.table import CompareTable


def table_csv(table: CompareTable) -> str:
    """The table as CSV: one header row, then exact values (FLOPs in the view's unit), with
    the submission id first; text cells a spreadsheet would read as formulas are quoted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission_id", *(c.key for c in table.columns)])
    for row in table.rows:
        writer.writerow([row.submission_id, *(_csv_value(row.value[c.key]) for c in table.columns)])
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return csv_cell(value) if isinstance(value, str | int) else value


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\u2212": "$-$",
    "\u2265": r"$\geq$ ",
    "\u2013": "--",
    "\u2014": "---",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell or caption (special characters escaped, line
    breaks as spaces)."""
    text = " ".join(text.split())
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def table_latex(table: CompareTable, label: str = "tab:compare") -> str:
    """A `table` with a `tabular` (plain \\hline rules, no package needed) and the caption,
    which names the cost-counter version."""
    shown = table.shown_columns
    spec = "".join("r" if c.numeric else "l" for c in shown)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(table.caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\hline",
        " & ".join(latex_escape(c.label) for c in shown) + r" \\",
        r"\hline",
    ]
    for row in table.rows:
        lines.append(" & ".join(latex_escape(row.text[c.key]) for c in shown) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)

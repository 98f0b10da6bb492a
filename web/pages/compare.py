"""The compare view (`/compare`) and its table exports (`/compare.csv`, `/compare.tex`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from core.errors import InvalidInputError
from web.auth import OptionalUser
from web.deps import SessionDep, SettingsDep
from web.lookups import QueryTaskDep
from web.pages.templating import render
from web.views.compare import (
    CompareTable,
    compare_view,
    export_table,
    parse_compare_query,
    table_csv,
    table_latex,
)

router = APIRouter(include_in_schema=False)

Ids = Annotated[list[str], Query(max_length=400)]
Option = Annotated[str, Query(max_length=20)]


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: OptionalUser,
    row: QueryTaskDep,
    ids: Ids = [],  # noqa: B006 (FastAPI copies defaults)
    scale: Option = "log",
    unit: Option = "M",
    ref: Option = "",
) -> HTMLResponse:
    """Chosen entries of one task on both plots, with their points as a table."""
    try:
        query = parse_compare_query(row.name, ids, scale, unit, ref)
    except InvalidInputError as exc:
        context = {
            "error": exc,
            "task_name": row.name,
            "display_name": row.display_name,
        }
        return render(request, "compare.html", context, user=user, status_code=400)
    view = compare_view(session, settings, row, query)
    return render(request, "compare.html", {"view": view, "error": None}, user=user)


def _export_table(
    session: SessionDep,
    settings: SettingsDep,
    row: QueryTaskDep,
    ids: Ids = [],  # noqa: B006
    scale: Option = "log",
    unit: Option = "M",
    ref: Option = "",
) -> CompareTable:
    """The view's table for the exports, from the same query as the page (422 on a bad one)."""
    query = parse_compare_query(row.name, ids, scale, unit, ref)
    return export_table(session, settings, row, query)


ExportTable = Annotated[CompareTable, Depends(_export_table)]


@router.get("/compare.csv")
def compare_csv(table: ExportTable, row: QueryTaskDep) -> Response:
    """The compare table as CSV (exact values, FLOPs in the chosen unit)."""
    return Response(
        table_csv(table),
        media_type="text/csv; charset=utf-8",
        headers=_attachment(f"compare-{row.name}.csv"),
    )


@router.get("/compare.tex")
def compare_latex(table: ExportTable, row: QueryTaskDep) -> Response:
    """The compare table as a LaTeX `table` (a `tabular`; the caption names the counter)."""
    return Response(
        table_latex(table, label=f"tab:compare-{row.name.lower()}"),
        media_type="application/x-tex; charset=utf-8",
        headers=_attachment(f"compare-{row.name}.tex"),
    )


def _attachment(name: str) -> dict[str, str]:
    safe = "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in name)
    return {
        "Content-Disposition": f'attachment; filename="{safe}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }

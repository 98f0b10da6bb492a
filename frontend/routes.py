"""Server-rendered pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from core.tasks import service
from core.tasks.manifest import Family, family_title
from server.deps import SessionDep

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep) -> HTMLResponse:
    tasks = service.list_tasks(session)
    rows = [
        {
            "name": t.name,
            "display_name": t.display_name,
            "family": family_title(Family(t.family)),
            "metric": t.metric,
            "test_size": f"{t.test_size:,}",
        }
        for t in tasks
    ]
    return templates.TemplateResponse(request, "home.html", {"tasks": rows})

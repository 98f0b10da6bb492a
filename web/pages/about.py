"""The about / method page and the example model files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from core.errors import NotFoundError
from core.ranking.tracks import Track
from core.submissions import plausibility
from web.auth import OptionalUser
from web.pages.docs import docs, example_files, example_path
from web.pages.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/about", response_class=HTMLResponse)
def about(request: Request, user: OptionalUser) -> HTMLResponse:
    """How costs are counted and entries ranked, the model-file contract, the API and CLI."""
    context = {
        "docs": docs(),
        "examples": example_files(),
        "tracks": [f"{t.value} ({t.limit:,} parameters)" for t in Track],
        "plausible": plausibility.method_text(),
    }
    return render(request, "about.html", context, user=user, active="about")


@router.get("/about/examples/{name}")
def example(name: Annotated[str, Path(max_length=100)]) -> Response:
    """One example model file, as text."""
    path = example_path(name)
    if path is None:
        raise NotFoundError(f"No example file {name!r}")
    return Response(
        path.read_bytes(),
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"},
    )

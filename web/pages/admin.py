"""Administrators: choose a task's baseline, hide or list a submission, re-run submissions.

Plain forms (CSRF token in a hidden field) posted to these routes, which call the same commands
as the API's admin endpoints (`core.submissions.commands`), then send the browser back with a
one-line notice; the request's session dependency commits.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.outbox import Outbox
from core.errors import InvalidInputError, ParetoboardError
from core.leaderboard import task_leaderboard
from core.models import Submission, User, UserRole
from core.submissions import commands, manage
from core.submissions.queries import page_url
from core.tasks import service as task_service
from web.auth import AdminUser, ForbiddenError, OptionalUser
from web.deps import SessionDep
from web.forms import text_fields
from web.lookups import form_administered_submission, form_id, form_task
from web.pages.login import safe_next
from web.pages.submissions import login_redirect
from web.pages.templating import flash_refusal, flash_when_done, render
from web.views import format as fmt

router = APIRouter(include_in_schema=False)
CANDIDATES = 30
RECENT = 30
FIELD_LIMIT = 200  # characters kept of a form field


def _tasks(session: Session) -> list[dict[str, Any]]:
    out = []
    for task in task_service.list_tasks(session):
        board = task_leaderboard(session, task.name)
        candidates = [
            {
                "id": s.submission_id,
                "label": f"#{s.submission_id} {s.name} (best {fmt.perf(s.best_performance)})",
                "selected": s.submission_id == task.baseline_submission_id,
            }
            for s in board.submissions[:CANDIDATES]
        ]
        out.append(
            {
                "name": task.name,
                "display_name": task.display_name,
                "baseline_id": task.baseline_submission_id,
                "baseline_name": board.baseline.submission_name if board.baseline else None,
                "baseline_url": (
                    page_url(task.baseline_submission_id) if task.baseline_submission_id else None
                ),
                "note": board.note,
                "candidates": candidates,
                "entries": len(board.submissions),
            }
        )
    return out


def _recent(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Submission, User.display_name)
        .outerjoin(User, User.id == Submission.owner_id)
        .order_by(Submission.id.desc())
        .limit(RECENT)
    ).all()
    return [
        {
            "id": s.id,
            "url": page_url(s.id),
            "name": s.name,
            "owner": owner or fmt.DASH,
            "state": s.state.value,
            "visibility": s.visibility.value,
            "hidden": s.hidden,
            "kind": s.kind.value.replace("_", "-"),
        }
        for s, owner in rows
    ]


@router.get("/admin", response_class=HTMLResponse, response_model=None)
def admin_page(
    request: Request,
    session: SessionDep,
    user: OptionalUser,
    submission: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse | RedirectResponse:
    if user is None:
        return login_redirect("/admin")
    if user.role is not UserRole.ADMIN:
        raise ForbiddenError("Administrators only")
    context = {"tasks": _tasks(session), "recent": _recent(session), "submission_id": submission}
    return render(request, "admin.html", context, user=user, active="admin")


def _back(form: dict[str, str]) -> RedirectResponse:
    return RedirectResponse(safe_next(form.get("next"), "/admin"), status_code=303)


@router.post("/admin/baseline", response_model=None)
async def choose_baseline(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    """Set (or with action=clear, remove) a task's baseline."""
    form = await text_fields(request, FIELD_LIMIT)
    task = form.get("task", "")
    try:
        if form.get("action") == "clear":
            commands.clear_baseline(session, task_name=task)
            message = f"{task} has no baseline now."
        else:
            sid = form_id(form.get("submission_id"))
            if sid is None:
                raise InvalidInputError("Choose a submission (its id)")
            commands.set_baseline(session, task_name=task, submission_id=sid)
            message = f"Submission {sid} is now the baseline of {task}."
        flash_when_done(request, session, lambda _: message)
    except ParetoboardError as exc:
        flash_refusal(request, session, exc)
    return _back(form)


def _requeued(sid: int, box: Outbox) -> str:
    """The notice once the job was sent (or not: the reconciler sends it later)."""
    queued = "" if box.sent else " (the queue is unreachable; the reconciler will send it)"
    return f"Submission {sid} was re-queued{queued}."


@router.post("/admin/submissions", response_model=None)
async def submission_action(request: Request, session: SessionDep, admin: AdminUser) -> Response:
    """Hide, list again, or re-run one submission (fields submission_id and action)."""
    form = await text_fields(request, FIELD_LIMIT)
    action = form.get("action", "")
    try:
        submission = form_administered_submission(form.get("submission_id"), admin, session)
        sid = submission.id
        if action in ("hide", "unhide"):
            commands.set_hidden(session, submission, action == "hide")
            done = (
                f"Submission {sid} is hidden from every public listing."
                if action == "hide"
                else f"Submission {sid} is listed again."
            )
            flash_when_done(request, session, lambda _: done)
        elif action == "rerun":
            commands.rerun(session, [submission])
            flash_when_done(request, session, lambda box: _requeued(sid, box))
        else:
            raise InvalidInputError(f"Unknown action {action!r}")
    except ParetoboardError as exc:
        flash_refusal(request, session, exc)
    return _back(form)


@router.post("/admin/tasks/rerun", response_model=None)
async def rerun_task(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    """Re-run every measured submission with predictions for a task."""
    form = await text_fields(request, FIELD_LIMIT)
    try:
        task = form_task(form.get("task"), session)
        requeued = commands.rerun(session, manage.submissions_of_task(session, task))
        done = f"{len(requeued)} submission(s) on {task.name} were re-queued."
        flash_when_done(request, session, lambda _: done)
    except ParetoboardError as exc:
        flash_refusal(request, session, exc)
    return _back(form)

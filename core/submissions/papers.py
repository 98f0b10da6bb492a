"""Self-reported entries ("from a paper"): points typed in, nothing measured, shown as such."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import InvalidInputError, NotFoundError, Problem
from core.models import Result, Submission, SubmissionKind, SubmissionState
from core.submissions.files import parse_prediction_name
from core.submissions.names import name_conflict
from core.submissions.schemas import PaperCreate
from core.submissions.state import set_state
from core.tasks.service import get_task
from core.text import normalise_name

SELF_REPORTED = "self_reported"  # Result.cost_status of every self-reported point
URL_MAX = 500


def create_paper_entry(session: Session, *, owner_id: int, entry: PaperCreate) -> Submission:
    """A submission of kind self_reported, already done, one Result per point (flushed)."""
    problems: list[Problem] = []
    name = normalise_name(entry.name)  # the schema has refused invisible characters
    if not name or len(name) > 200:
        problems.append(Problem("name must be 1 to 200 characters", column="name"))
    elif (conflict := name_conflict(session, owner_id=owner_id, name=name)) is not None:
        problems.append(Problem(conflict, column="name"))
    paper_url = str(entry.paper_url)
    code_url = str(entry.code_url) if entry.code_url is not None else None
    for field, url in (("paper_url", paper_url), ("code_url", code_url)):
        if url is not None and len(url) > URL_MAX:
            problems.append(Problem(f"at most {URL_MAX} characters", column=field))
    points: list[tuple[int, str, int]] = []  # (position in the list, point, task id)
    seen: dict[tuple[int, str], int] = {}
    for i, p in enumerate(entry.points):
        where = f"points.{i}"
        try:
            task = get_task(session, p.task)
        except NotFoundError as exc:
            problems.append(Problem(exc.message, column=f"{where}.task"))
            continue
        point = p.point.strip()
        if point and isinstance(parse_prediction_name(f"{task.name}.{point}.tsv"), Problem):
            problems.append(
                Problem("point names use letters, digits, _ or - only", column=f"{where}.point")
            )
            continue
        key = (task.id, point)
        if key in seen:
            problems.append(
                Problem(f"same task and point as points.{seen[key]}", column=f"{where}.point")
            )
            continue
        seen[key] = i
        points.append((i, point, task.id))
    if problems:
        raise InvalidInputError(
            f"The entry has {len(problems)} problem(s); nothing was stored", problems
        )
    submission = Submission(
        owner_id=owner_id,
        name=name,
        description=entry.description,
        paper_url=paper_url,
        code_url=code_url,
        kind=SubmissionKind.SELF_REPORTED,
        visibility=entry.visibility,
        params=entry.params,
    )
    set_state(submission, SubmissionState.DONE, "Self-reported from a paper; nothing was measured")
    session.add(submission)
    session.flush()
    for i, point, task_id in points:
        p = entry.points[i]
        session.add(
            Result(
                submission_id=submission.id,
                task_id=task_id,
                file_id=None,
                point=point,
                performance=p.performance,
                metrics=dict(p.metrics or {}),
                cost_status=SELF_REPORTED,
                flops_mean=p.flops,
                macs_mean=p.flops / 2,
                # the point's own count (an early exit uses fewer layers), else the entry's
                params=p.params if p.params is not None else entry.params,
            )
        )
    session.flush()
    return submission

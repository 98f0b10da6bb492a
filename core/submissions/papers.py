"""Self-reported entries ("from a paper"): points typed in, nothing measured, shown as such."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from core.errors import InvalidInputError, NotFoundError, Problem
from core.models import Result, Submission, SubmissionKind, SubmissionState
from core.submissions.files import parse_prediction_name
from core.submissions.names import name_conflict
from core.submissions.plausibility import check_cost
from core.submissions.schemas import PaperCreate
from core.submissions.self_reported import SELF_REPORTED
from core.submissions.state import set_state
from core.tasks.service import get_task
from core.text import normalise_name

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
    params: int | None = None
    if entry.params is not None:
        value, problem = check_cost("params", entry.params, entry.params_unit, column="params")
        if problem is not None:
            problems.append(problem)
        elif value is not None:
            params = round(value)
    # (position, point, task id, FLOPs, params)
    points: list[tuple[int, str, int, float, int | None]] = []
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
        flops, problem = check_cost("flops", p.flops, p.flops_unit, column=f"{where}.flops")
        if problem is not None:
            problems.append(problem)
            continue
        assert flops is not None
        key = (task.id, point)
        if key in seen:
            problems.append(
                Problem(f"same task and point as points.{seen[key]}", column=f"{where}.point")
            )
            continue
        seen[key] = i
        point_params = params
        if p.params is not None:
            value, problem = check_cost(
                "params", p.params, entry.params_unit, column=f"{where}.params"
            )
            if problem is not None:
                problems.append(problem)
                continue
            point_params = round(value) if value is not None else None
        points.append((i, point, task.id, flops, point_params))
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
        params=params,
    )
    set_state(submission, SubmissionState.DONE, "Self-reported from a paper; nothing was measured")
    session.add(submission)
    session.flush()
    for i, point, task_id, flops, point_params in points:
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
                flops_mean=flops,
                macs_mean=flops / 2,
                # the point's own count (an early exit uses fewer layers), else the entry's
                params=point_params,
            )
        )
    session.flush()
    return submission


POINTS_TABLE = "points_table"  # the web form's points: `TASK POINT PERFORMANCE FLOPS` per line
NO_POINT = "-"


def paper_from_form(values: dict[str, str]) -> tuple[PaperCreate | None, list[int], list[Problem]]:
    """The web form's paper entry: the entry (None when refused), each point's line in the
    points table, and the problems (a point's on its line, column `points_table`)."""
    problems: list[Problem] = []
    points: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, line in enumerate(values.get(POINTS_TABLE, "").splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 4:
            problems.append(
                Problem(
                    f"expected 4 values (task, point or {NO_POINT}, performance x100, FLOPs per "
                    f"sample), got {len(parts)}",
                    line=number,
                    column=POINTS_TABLE,
                )
            )
            continue
        task, point, performance, flops = parts
        points.append(
            {
                "task": task,
                "point": "" if point == NO_POINT else point,
                "performance": performance,
                "flops": flops,
                "flops_unit": values.get("flops_unit", ""),
            }
        )
        lines.append(number)
    if not points and not problems:
        problems.append(Problem("at least one point", column=POINTS_TABLE))
    raw: dict[str, Any] = {
        "name": values.get("name", ""),
        "description": values.get("description", ""),
        "paper_url": values.get("paper_url", "").strip(),
        "code_url": values.get("code_url", "").strip() or None,
        "visibility": values.get("visibility") or "public",
        "params": values.get("params", "").strip() or None,
        "params_unit": values.get("params_unit", ""),
        "points": points or [{}],
    }
    try:
        entry = PaperCreate.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            if loc[:1] == ["points"] and len(loc) > 1 and points:
                problems.append(
                    Problem(
                        f"{loc[-1]}: {error['msg']}", line=lines[int(loc[1])], column=POINTS_TABLE
                    )
                )
            elif loc[:1] != ["points"]:
                problems.append(Problem(error["msg"], column=loc[0] if loc else None))
        return None, lines, problems
    return (None if problems else entry), lines, problems


def on_table_lines(problems: list[Problem], lines: list[int]) -> list[Problem]:
    """`points.N.field` problems of `create_paper_entry` moved onto the form table's lines."""
    moved = []
    for p in problems:
        parts = (p.column or "").split(".")
        if parts[0] == "points" and len(parts) > 1 and parts[1].isdigit():
            i = int(parts[1])
            where = parts[2] if len(parts) > 2 else "point"
            line = lines[i] if i < len(lines) else None
            moved.append(Problem(f"{where}: {p.problem}", line=line, column=POINTS_TABLE))
        else:
            moved.append(p)
    return moved

"""ELUE's Type 1 submissions: prediction files scored by the platform, with each file's FLOPs
and parameters typed in by the submitter (no model file; the costs are self-reported).

The costs come as a JSON list (`costs`, the API and CLI) or as a table typed into the web form
(one line per file: `FILE FLOPS PARAMS`, units chosen once for the table). Each row names a
prediction file; the name is read as the upload's name is (`<TASK>.<point>.tsv`, `<TASK>/<point>.tsv`
as in ELUE's zip, ElasticBERT's `<TASK>_<point>.tsv`), so it matches by task and point.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

from core.errors import Problem
from core.submissions.files import resolve_prediction_names
from core.submissions.plausibility import FlopsUnit, ParamsUnit, check_cost
from core.submissions.schemas import FileCost
from core.submissions.states import CostStatus
from core.tasks.names import TaskNames

SELF_REPORTED = CostStatus.SELF_REPORTED  # Result.cost_status of every self-reported point
COSTS_FIELD = "costs"
# The web form's table and its units (also accepted by the API, instead of `costs`)
TABLE_FIELD = "costs_table"
FLOPS_UNIT_FIELD = "costs_flops_unit"
PARAMS_UNIT_FIELD = "costs_params_unit"
MAX_ROWS = 500
_ROWS = TypeAdapter(list[FileCost])
U = TypeVar("U", FlopsUnit, ParamsUnit)


@dataclass(frozen=True, slots=True)
class PointCost:
    """One point's self-reported cost, in base units."""

    file: str  # as the submitter named it
    flops: float  # per sample
    params: int


def parse_costs_json(text: str) -> list[FileCost] | list[Problem]:
    """The `costs` field: a JSON list of {file, flops, flops_unit, params, params_unit}."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return [Problem(f"not JSON: {exc}", column=COSTS_FIELD)]
    if not isinstance(raw, list) or not raw:
        return [
            Problem(
                "expected a non-empty JSON list of {file, flops, flops_unit, params, "
                'params_unit}, e.g. [{"file": "SST-2.l4.tsv", "flops": 6788, "flops_unit": '
                '"MFLOPs", "params": 67, "params_unit": "M"}]',
                column=COSTS_FIELD,
            )
        ]
    if len(raw) > MAX_ROWS:
        return [Problem(f"at most {MAX_ROWS} rows, got {len(raw)}", column=COSTS_FIELD)]
    try:
        return _ROWS.validate_python(raw)
    except ValidationError as exc:
        return [
            Problem(
                error["msg"],
                column=".".join([COSTS_FIELD, *(str(p) for p in error["loc"])]),
            )
            for error in exc.errors()[:50]
        ]


def parse_costs_table(
    text: str, flops_unit: FlopsUnit, params_unit: ParamsUnit
) -> tuple[list[FileCost], list[int]] | list[Problem]:
    """The web form's table: one line per prediction file, `FILE FLOPS PARAMS` (spaces or tabs
    between them; no thousands separators). The rows and their line numbers, or the problems."""
    rows: list[FileCost] = []
    lines: list[int] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            problems.append(
                Problem(
                    f"expected 3 values (file, FLOPs per sample in {flops_unit.value}, "
                    f"parameters in {params_unit.value}), got {len(parts)}: {line[:100]!r}",
                    line=number,
                    column=TABLE_FIELD,
                )
            )
            continue
        values: list[float] = []
        for label, part in (("FLOPs", parts[1]), ("parameters", parts[2])):
            try:
                value = float(part)
            except ValueError:
                problems.append(
                    Problem(
                        f"{label}: {part[:40]!r} is not a number", line=number, column=COSTS_FIELD
                    )
                )
                break
            if not math.isfinite(value):
                problems.append(
                    Problem(
                        f"{label}: {part[:40]!r} is not finite", line=number, column=COSTS_FIELD
                    )
                )
                break
            values.append(value)
        if len(values) == 2:
            lines.append(number)
            rows.append(
                FileCost(
                    file=parts[0][:255],
                    flops=values[0],
                    flops_unit=flops_unit,
                    params=values[1],
                    params_unit=params_unit,
                )
            )
    if problems:
        return problems
    if not rows:
        return [Problem("no rows: one line per prediction file", column=TABLE_FIELD)]
    if len(rows) > MAX_ROWS:
        return [Problem(f"at most {MAX_ROWS} rows, got {len(rows)}", column=TABLE_FIELD)]
    return rows, lines


def match_costs(
    rows: Sequence[FileCost],
    predictions: Sequence[tuple[int, str, str]],
    tasks: TaskNames,
    problems: list[Problem],
    *,
    lines: Sequence[int] | None = None,
) -> dict[tuple[int, str], PointCost]:
    """Each prediction file's (task id, point, name) with its row's cost, checked; problems
    (implausible numbers, unit slips, rows naming no uploaded file, files without a row) are
    added to `problems`. `lines`: the rows came from the form's table, at these lines."""
    costs: dict[tuple[int, str], PointCost] = {}
    seen: dict[tuple[int, str], int] = {}
    wanted = {(task_id, point): name for task_id, point, name in predictions}
    for i, (row, named) in enumerate(
        zip(rows, resolve_prediction_names([r.file for r in rows], tasks), strict=True)
    ):
        where = f"{COSTS_FIELD}.{i}"
        line = lines[i] if lines is not None else None

        def at(text: str, part: str, line: int | None = line, where: str = where) -> Problem:
            if line is not None:
                return Problem(text, line=line, column=TABLE_FIELD)
            return Problem(text, column=f"{where}.{part}")

        if isinstance(named, Problem):
            problems.append(at(f"{row.file}: {named.problem}", "file"))
            continue
        key = (named.task.id, named.point)
        if key not in wanted:
            problems.append(
                at(
                    f"{row.file} (task {named.task.name}, point {named.point or '(none)'}) is "
                    "not one of the uploaded prediction files",
                    "file",
                )
            )
            continue
        if key in seen:
            first = (
                f"line {lines[seen[key]]}" if lines is not None else f"{COSTS_FIELD}.{seen[key]}"
            )
            problems.append(at(f"{row.file}: the same task and point as {first}", "file"))
            continue
        seen[key] = i
        flops, flops_problem = check_cost(
            "flops", row.flops, row.flops_unit, column=f"{where}.flops"
        )
        params, params_problem = check_cost(
            "params", row.params, row.params_unit, column=f"{where}.params"
        )
        for problem, part in ((flops_problem, "flops"), (params_problem, "params")):
            if problem is not None:
                problems.append(at(f"{row.file}: {problem.problem}", part))
        if flops is not None and params is not None:
            costs[key] = PointCost(row.file, flops, round(params))
    for key, name in wanted.items():
        if key not in seen:
            problems.append(
                Problem(
                    "no self-reported FLOPs and parameters for this prediction file: add a "
                    f"row for it to {COSTS_FIELD if lines is None else 'the costs table'}",
                    file=name,
                    column=COSTS_FIELD if lines is None else TABLE_FIELD,
                )
            )
    return costs


@dataclass(frozen=True, slots=True)
class TypedCosts:
    """The self-reported costs sent with a Type 1 submission (empty: refused, problems said
    why); `lines`: from the form's table, each row's line."""

    rows: list[FileCost]
    lines: list[int] | None = None


def costs_from_fields(fields: dict[str, str], problems: list[Problem]) -> TypedCosts | None:
    """The costs in a submission's text fields (`costs` JSON, or the form's table with its two
    units); None: none given, a measured submission. Problems are added to `problems`."""
    text = fields.get(COSTS_FIELD)
    table = fields.get(TABLE_FIELD, "").strip()
    if text is not None and table:
        problems.append(
            Problem(f"give {COSTS_FIELD} or {TABLE_FIELD}, not both", column=COSTS_FIELD)
        )
        return TypedCosts([])
    if text is not None:
        parsed = parse_costs_json(text)
        rows = [r for r in parsed if isinstance(r, FileCost)]
        problems.extend(p for p in parsed if isinstance(p, Problem))
        return TypedCosts(rows)
    if not table:
        return None
    flops_unit = _unit(fields, FLOPS_UNIT_FIELD, FlopsUnit, problems)
    params_unit = _unit(fields, PARAMS_UNIT_FIELD, ParamsUnit, problems)
    if flops_unit is None or params_unit is None:
        return TypedCosts([])
    found = parse_costs_table(table, flops_unit, params_unit)
    if isinstance(found, list):
        problems.extend(found)
        return TypedCosts([])
    return TypedCosts(found[0], found[1])


def _unit(fields: dict[str, str], field: str, unit: type[U], problems: list[Problem]) -> U | None:
    raw = fields.get(field, "")
    try:
        return unit(raw)
    except ValueError:
        problems.append(
            Problem(
                f"the unit of the table's column, one of {', '.join(u.value for u in unit)}; "
                f"got {raw[:40]!r}",
                column=field,
            )
        )
        return None

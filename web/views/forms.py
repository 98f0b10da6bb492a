"""Problems from a refused form, placed next to the field or file they concern."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.errors import Problem

SUBMIT_FIELDS = (
    "name",
    "description",
    "paper_url",
    "code_url",
    "visibility",
    # ELUE's Type 1: the self-reported costs table and its units (_self_reported_costs.html)
    "costs_table",
    "costs_flops_unit",
    "costs_params_unit",
)


def problem_text(p: Problem, *, with_file: bool = False) -> str:
    """ "line 5, column prediction: expected 0 or 1" (the file name only when asked)."""
    where = []
    if with_file and p.file:
        where.append(p.file)
    if p.line is not None:
        where.append(f"line {p.line}")
    if p.column and p.column not in SUBMIT_FIELDS:
        where.append(f"column {p.column}")
    return f"{', '.join(where)}: {p.problem}" if where else p.problem


@dataclass
class FileProblems:
    name: str
    problems: list[str]


@dataclass
class SubmitProblems:
    """A refused upload's problems, by where the form shows them."""

    fields: dict[str, list[str]] = field(default_factory=dict)  # name, description, ...
    model: list[str] = field(default_factory=list)
    tokenizer: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    predictions: list[FileProblems] = field(default_factory=list)
    predictions_general: list[str] = field(default_factory=list)
    general: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return (
            sum(len(v) for v in self.fields.values())
            + len(self.model)
            + len(self.tokenizer)
            + len(self.weights)
            + sum(len(f.problems) for f in self.predictions)
            + len(self.predictions_general)
            + len(self.general)
        )


def group_submit_problems(
    problems: Iterable[Problem],
    *,
    model: str | None,
    tokenizer: str | None,
    weights: str | None = None,
) -> SubmitProblems:
    out = SubmitProblems()
    by_file: dict[str, FileProblems] = {}
    for p in problems:
        column = p.column or ""
        if column in SUBMIT_FIELDS and not p.file:
            out.fields.setdefault(column, []).append(problem_text(p))  # with its line, if any
        elif column == "model" or (model and p.file == model):
            out.model.append(problem_text(p))
        elif column in ("tokenizer", "tokenizer_name") or (tokenizer and p.file == tokenizer):
            out.tokenizer.append(problem_text(p))
        elif column == "weights" or (weights and p.file == weights):
            out.weights.append(problem_text(p))
        elif p.file:
            entry = by_file.get(p.file)
            if entry is None:
                entry = by_file[p.file] = FileProblems(p.file, [])
                out.predictions.append(entry)
            entry.problems.append(problem_text(p))
        elif column == "predictions":
            out.predictions_general.append(p.problem)
        else:
            out.general.append(problem_text(p, with_file=True))
    return out


def field_problems(problems: Iterable[Problem]) -> tuple[dict[str, list[str]], list[str]]:
    """Account forms: problems by field (`column`), and the rest."""
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for p in problems:
        if p.column:
            fields.setdefault(p.column, []).append(p.problem)
        else:
            general.append(p.problem)
    return fields, general

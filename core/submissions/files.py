"""Checks on submitted files that need no user code to run: names, the model file's shape."""

from __future__ import annotations

import ast
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import Problem
from core.models import Task
from core.tasks.names import TaskNames

# <TASK>.tsv or <TASK>.<point>.tsv; the point names one efficiency setting on the curve.
_POINT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}"
_TASK = r"[A-Za-z0-9][A-Za-z0-9-]*"
_PREDICTION_NAME = re.compile(
    rf"^(?P<task>[A-Za-z0-9][A-Za-z0-9_-]*)(?:\.(?P<point>{_POINT}))?\.tsv$"
)
# ElasticBERT's outputs: {task}_{threshold}.tsv with {task}_infer_exit_layer_{threshold}.tsv.
_EXIT_NAME = re.compile(rf"^(?:(?P<task>{_TASK})_)?infer_exit_layer_(?P<point>{_POINT})\.tsv$")
_PAIRED_NAME = re.compile(rf"^(?P<task>{_TASK})_(?P<point>{_POINT})\.tsv$")
_POINT_NAME = re.compile(rf"^(?P<point>{_POINT})\.tsv$")
MODEL_ENTRY = "entire_model"
NAME_FORMS = (
    "<TASK>.tsv, <TASK>.<point>.tsv, ElasticBERT's pair <TASK>_<point>.tsv with "
    "<TASK>_infer_exit_layer_<point>.tsv, or <TASK>/<point>.tsv in a zip (point: letters, "
    "digits, ., _ or -, at most 64)"
)


@dataclass(frozen=True, slots=True)
class PredictionName:
    task: str
    point: str  # "" when the file is the task's only point


def parse_prediction_name(name: str) -> PredictionName | Problem:
    """Split `SST-2.tsv` / `SST-2.exit3.tsv` into task and point, or say what was expected."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    match = _PREDICTION_NAME.match(base)
    if match is None:
        return Problem(
            f"file name {base!r} is not <TASK>.tsv or <TASK>.<point>.tsv "
            "(point: letters, digits, ., _ or -)",
            file=base,
        )
    return PredictionName(match["task"], match["point"] or "")


class FileKind(enum.Enum):
    PREDICTIONS = "predictions"
    EXIT_LAYERS = "exit_layers"  # ElasticBERT's {task}_infer_exit_layer_{threshold}.tsv


@dataclass(frozen=True, slots=True)
class NamedFile:
    """What a prediction file's name (or its path in a zip) says it is."""

    display: str  # the name shown in problems: the base name, or <task folder>/<name> in a zip
    task: Task
    point: str
    kind: FileKind
    partner: str | None  # the other file of an ElasticBERT pair, as it should be named
    needs_partner: bool  # ElasticBERT's {task}_{threshold}.tsv: its exit layers are elsewhere


def _flat(base: str, display: str, tasks: TaskNames) -> NamedFile | Problem:
    """A file name on its own (a form upload, or a zip's top level)."""
    exit_match = _EXIT_NAME.match(base)
    if exit_match is not None:
        if exit_match["task"] is None:
            return Problem(
                "an exit-layer file outside a task folder names its task: expected "
                "<TASK>_infer_exit_layer_<point>.tsv, e.g. sst-2_infer_exit_layer_0.3.tsv",
                file=display,
            )
        task = tasks.find(exit_match["task"])
        if task is None:
            return Problem(
                tasks.unknown(
                    exit_match["task"],
                    f"read from {base!r} as <TASK>_infer_exit_layer_<point>.tsv",
                ),
                file=display,
            )
        point = exit_match["point"]
        return NamedFile(
            display, task, point, FileKind.EXIT_LAYERS, f"{exit_match['task']}_{point}.tsv", False
        )
    dotted = _PREDICTION_NAME.match(base)
    if dotted is not None and (task := tasks.find(dotted["task"])) is not None:
        return NamedFile(display, task, dotted["point"] or "", FileKind.PREDICTIONS, None, False)
    paired = _PAIRED_NAME.match(base)
    if paired is not None and (task := tasks.find(paired["task"])) is not None:
        point = paired["point"]
        partner = f"{paired['task']}_infer_exit_layer_{point}.tsv"
        return NamedFile(display, task, point, FileKind.PREDICTIONS, partner, True)
    if paired is not None:
        how = f"read from {base!r} as ElasticBERT's <TASK>_<threshold>.tsv"
        if dotted is not None:
            how += f"; as <TASK>.<point>.tsv it would be task {dotted['task']!r}, also unknown"
        return Problem(tasks.unknown(paired["task"], how), file=display)
    if dotted is not None:
        form = "<TASK>.<point>.tsv" if dotted["point"] else "<TASK>.tsv"
        return Problem(tasks.unknown(dotted["task"], f"read from {base!r} as {form}"), file=display)
    return Problem(f"file name {base!r} is not one of {NAME_FORMS}", file=display)


def _in_folder(folder: str, task: Task, base: str, tasks: TaskNames) -> NamedFile | Problem:
    """A file inside a task folder (ELUE's zip): its name is the point."""
    display = f"{folder}/{base}"
    exit_match = _EXIT_NAME.match(base)
    if exit_match is not None:
        named = exit_match["task"]
        if named is not None and tasks.find(named) is not task:
            return Problem(
                f"names task {named!r}, but it is in the folder of task {task.name} ({folder}/)",
                file=display,
            )
        point = exit_match["point"]
        partner = f"{folder}/{named}_{point}.tsv" if named else f"{folder}/{point}.tsv"
        return NamedFile(display, task, point, FileKind.EXIT_LAYERS, partner, False)
    paired = _PAIRED_NAME.match(base)
    if paired is not None and tasks.find(paired["task"]) is task:
        point = paired["point"]
        partner = f"{folder}/{paired['task']}_infer_exit_layer_{point}.tsv"
        return NamedFile(display, task, point, FileKind.PREDICTIONS, partner, True)
    dotted = _PREDICTION_NAME.match(base)
    if dotted is not None and tasks.find(dotted["task"]) is task:
        return NamedFile(display, task, dotted["point"] or "", FileKind.PREDICTIONS, None, False)
    plain = _POINT_NAME.match(base)
    if plain is None:
        return Problem(
            f"file name {base!r} in task folder {folder}/ is not <point>.tsv (point: letters, "
            "digits, ., _ or -, at most 64; e.g. 3.tsv or 0.3.tsv)",
            file=display,
        )
    return NamedFile(display, task, plain["point"], FileKind.PREDICTIONS, None, False)


def resolve_prediction_names(names: Sequence[str], tasks: TaskNames) -> list[NamedFile | Problem]:
    """What each prediction file is (task, point, kind), in order, or the problem with its name.

    `names` are base names (form uploads) or paths inside a zip. In a zip, files are at the top
    level (named as on their own) or in one folder per task (`SST-2/3.tsv`, ELUE's layout), and
    either may sit in one top-level folder: a single top-level folder is a task folder when it is
    named after a task and holds no folders, otherwise it is only a wrapper.
    """
    split = [[p for p in n.replace("\\", "/").split("/") if p] or [n] for n in names]
    if split and all(len(p) >= 2 for p in split) and len({p[0] for p in split}) == 1:
        top = split[0][0]
        if any(len(p) > 2 for p in split) or tasks.find(top) is None:
            split = [p[1:] for p in split]
    out: list[NamedFile | Problem] = []
    for name, parts in zip(names, split, strict=True):
        if len(parts) == 1:
            out.append(_flat(parts[0], parts[0], tasks))
        elif len(parts) == 2:
            folder, base = parts
            task = tasks.find(folder)
            if task is None:
                how = f"read from the folder of {'/'.join(parts)!r}: one folder per task"
                out.append(Problem(tasks.unknown(folder, how), file="/".join(parts)))
            else:
                out.append(_in_folder(folder, task, base, tasks))
        else:
            out.append(
                Problem(
                    "too deep: expected <TASK>/<point>.tsv, optionally inside one top-level folder",
                    file=name,
                )
            )
    return out


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            # Definitions guarded by if/try/with at top level still count.
            inner = ast.Module(
                body=[n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)],
                type_ignores=[],
            )
            names |= _defined_names(inner)
    return names


def check_model_source(source: bytes, file_name: str) -> list[Problem]:
    """The model file must be UTF-8 Python that defines `entire_model` at module level."""
    try:
        text = source.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [Problem(f"not UTF-8 text (byte {exc.start})", file=file_name)]
    if "\x00" in text:
        return [Problem("binary file: expected Python source", file=file_name)]
    try:
        tree = ast.parse(text, filename=file_name)
    except SyntaxError as exc:
        return [Problem(f"Python syntax error: {exc.msg}", file=file_name, line=exc.lineno)]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [Problem(f"cannot parse as Python: {exc}", file=file_name)]
    if MODEL_ENTRY not in _defined_names(tree):
        return [
            Problem(
                f"defines no module-level `{MODEL_ENTRY}` (an nn.Module: the whole network, whose "
                "parameters are counted); see the model-file contract",
                file=file_name,
            )
        ]
    return []

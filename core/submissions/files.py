"""Checks on submitted files that need no user code to run: names, the model file's shape."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from core.errors import Problem

# <TASK>.tsv or <TASK>.<point>.tsv; the point names one efficiency setting on the curve.
_PREDICTION_NAME = re.compile(
    r"^(?P<task>[A-Za-z0-9][A-Za-z0-9_-]*)(?:\.(?P<point>[A-Za-z0-9_-]{1,64}))?\.tsv$"
)
MODEL_ENTRY = "entire_model"


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
            "(point: letters, digits, _ or -)",
            file=base,
        )
    return PredictionName(match["task"], match["point"] or "")


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

"""`paretoboard score TASK FILE`: score one prediction file against the stored gold."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import session_scope, settings
from core.scoring import score_file


def score(
    task: str = typer.Argument(..., help="task name, e.g. SST-2"),
    file: Path = typer.Argument(..., help="prediction file (TSV with header)", exists=True),
) -> None:
    """Print the metric of FILE on TASK, or every problem found in it (exit code 1)."""
    limits = settings().limits
    with session_scope() as session:
        scored = score_file(
            session,
            task,
            file,
            max_bytes=limits.prediction_file_bytes,
            max_problems=limits.max_problems,
        )
    m = scored.metrics
    parts = ", ".join(f"{k}={v:.2f}" for k, v in m.components.items())
    typer.echo(f"{scored.task}: {m.performance:.2f} ({parts}; {scored.parsed.n} rows)")

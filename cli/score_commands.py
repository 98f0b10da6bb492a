"""`paretoboard score TASK FILE`: score one prediction file against the stored gold."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import session_scope, settings
from core.scoring import BootstrapConfig, backfill_uncertainty, score_file
from core.storage import blob_store


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


def uncertainty(
    everything: bool = typer.Option(
        False, "--all", help="recompute every interval, not only the missing ones"
    ),
) -> None:
    """Bootstrap intervals and exit diagnostics for scored results that have none (results
    scored before they existed, or imported); idempotent (docs/ranking.md)."""
    s = settings()
    with session_scope() as session:
        report = backfill_uncertainty(
            session,
            blob_store(s),
            BootstrapConfig(s.scoring.bootstrap_resamples, s.scoring.bootstrap_seed),
            max_bytes=s.limits.prediction_file_bytes,
            max_problems=s.limits.max_problems,
            everything=everything,
        )
    for line in report.skipped:
        typer.echo(f"skipped: {line}", err=True)
    typer.echo(
        f"uncertainty: {report.results} result(s) on {report.groups} submission task(s) given "
        f"intervals, {len(report.skipped)} skipped"
    )

"""`paretoboard export results` / `paretoboard import results`: move a leaderboard as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cli.common import session_scope, settings
from core import results_transfer

export_app = typer.Typer(help="Export data as JSON (to move a leaderboard).", no_args_is_help=True)
import_app = typer.Typer(help="Import data exported by another installation.", no_args_is_help=True)


@export_app.command("results")
def export_results(
    output: Path = typer.Option(..., "--output", "-o", help="the JSON file to write ('-': stdout)"),
    per_sample: bool = typer.Option(
        False, "--per-sample", help="include per-sample FLOPs and cost breakdowns (larger)"
    ),
    owners: bool = typer.Option(
        True, "--owners/--no-owners", help="include owners' emails (matched on import)"
    ),
) -> None:
    """Write every finished submission and its results to OUTPUT."""
    with session_scope() as session:
        doc = results_transfer.export_results(
            session, per_sample=per_sample, owners=owners, source=settings().base_url
        )
    text = json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    if str(output) == "-":
        sys.stdout.write(text)
        return
    tmp = output.with_name(output.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(output)
    n_results = sum(len(s["results"]) for s in doc["submissions"])
    typer.echo(f"exported {len(doc['submissions'])} submissions, {n_results} results to {output}")


@import_app.command("results")
def import_results(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a results export"),
) -> None:
    """Add the submissions and results of FILE that are not here yet (idempotent)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        typer.echo(f"error: cannot read {file}: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    with session_scope() as session:
        report = results_transfer.import_results(session, data)
    typer.echo(
        f"imported {len(report.created)} submissions ({report.results} results); "
        f"{len(report.already_present)} already present"
    )
    if report.owners_not_found:
        typer.echo(
            f"{len(report.owners_not_found)} imported as operator entries (their owner has no "
            f"account here): {', '.join(report.owners_not_found)}"
        )
    if report.baselines_set:
        typer.echo(f"baselines set for: {', '.join(report.baselines_set)}")

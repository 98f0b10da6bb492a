"""`paretoboard count MODEL.py --task T [PREDICTIONS...]`: the server's counter, run here.

The same steps as a submission's cost job, with the same code: the task's public test inputs
from this installation's database (`paretoboard tasks import`), tokenized by the same bounded
child process with the same registered tokenizer, one job entry per prediction file built by
`worker.counting_stage.add_point` (the function the server's `build_job` calls), the model
captured in the bubblewrap sandbox (`worker.capture`) and counted by the trusted counter
(`worker.graphcount`: the same rule table). So the numbers printed are the ones the platform
will count, with the counter version and the rule-table hash that say so.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import typer

from cli.common import fail, session_scope, settings
from core.costs import flops_summary
from core.errors import InvalidInputError, ParetoboardError, Problem
from core.predictions import ParsedPredictions, PredictionFormat, parse_prediction_file
from core.submissions.service import CheckedSubmission, UploadedFile, _check_predictions
from core.tasks.service import get_task, load_test_texts, manifest_of
from core.tokenizers import DEFAULT_TOKENIZER, registered_tokenizers

if TYPE_CHECKING:
    from worker.counting_stage import CostJob

WHOLE_MODEL = "(no prediction file: every sample through the whole model)"


def count(
    model: Path = typer.Argument(..., help="the model file (.py) defining entire_model"),
    predictions: list[Path] = typer.Argument(
        None,
        help="prediction files of the task, named as for a submission (an early-exit model's "
        "exit layers come from them); none: every sample through the whole model",
    ),
    task: str = typer.Option(..., "--task", help="the task, e.g. SST-2 (any spelling)"),
    tokenizer_name: str = typer.Option(
        DEFAULT_TOKENIZER, "--tokenizer-name", help="a tokenizer registered on this installation"
    ),
    device: str = typer.Option("cpu", help="cpu, or cuda to capture on the GPU"),
    as_json: bool = typer.Option(False, "--json", help="print the numbers as JSON"),
) -> None:
    """Count FLOPs per sample and parameters as the platform will (in the sandbox)."""
    # the worker extra's (sympy, torch): imported by this command only, so that the rest of the
    # CLI (serve, db upgrade, ...) runs on the base install
    try:
        from worker import counting_stage
        from worker.counting_stage import CostJob, add_point, run_cost_job
        from worker.tokenize_job import TokenizeRequest, TokenizerError
    except ModuleNotFoundError as exc:
        _die(
            f"counting needs the worker extra ({exc.name} is not installed): "
            "pip install -r requirements/lock-worker.txt after torch (README)"
        )

    config = settings()
    if not model.is_file():
        _die(f"no such file: {model}")
    for path in predictions or []:
        if not path.is_file():
            _die(f"no such file: {path}")
    tokenizers = registered_tokenizers(config.storage.tokenizers_dir)
    if tokenizer_name not in tokenizers:
        _die(
            f"unknown tokenizer {tokenizer_name!r}; registered in "
            f"{config.storage.tokenizers_dir}: {', '.join(sorted(tokenizers)) or 'none'}"
        )
    staging = Path(tempfile.mkdtemp(prefix="paretoboard-count-"))
    try:
        with session_scope() as session:
            row = get_task(session, task)  # NotFoundError: the known tasks, named
            task_name, task_id, n_rows = row.name, row.id, row.test_size
            texts = load_test_texts(session, row)
            points = _read_predictions(session, row, predictions or [], staging, config)
            manifest_of(row)  # loaded while the row is attached (add_point reads it)
            try:
                inputs = counting_stage.tokenize_inputs(
                    TokenizeRequest(
                        tokenizer=tokenizers[tokenizer_name],
                        label=f"the registered tokenizer {tokenizer_name!r}",
                        uploaded=False,
                        texts={task_id: texts},
                        task_names={task_id: task_name},
                    ),
                    config,
                )
            except TokenizerError as exc:
                _die(exc.message)
            job = CostJob()
            for i, parsed in enumerate(points or [_whole_model(n_rows)]):
                add_point(job, i, row, parsed, inputs[task_id], parsed.file)
        try:
            run = run_cost_job(model.read_bytes(), job, config, device=device)
        except ParetoboardError as exc:  # the sandbox cannot start here: says what to install
            fail(exc)
            return
        if run.failure is not None or run.output is None:
            detail = run.failure or "no output"
            if run.output is not None and run.output.error is not None:
                detail += "\n" + run.output.error.traceback[-4000:]
            _die(f"the model was not counted: {detail}\n{run.log[-2000:]}", 1)
        report = _report(task_name, job, run.output, points or [_whole_model(n_rows)])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"{report['task']}: {report['params']:,} parameters; counter {report['counter_version']}, "
        f"rule table {report['rule_hash']}"
    )
    for p in report["points"]:
        flag = " (incomplete: a lower bound)" if p["incomplete"] else ""
        typer.echo(
            f"  {p['file']}: {p['flops_mean'] / 1e6:,.3f} MFLOPs per sample "
            f"({p['flops_mean']:,.0f} FLOPs; ELUE convention "
            f"{(p['flops_elue_mean'] or 0) / 1e6:,.3f} MFLOPs){flag}"
        )


def _die(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _whole_model(n: int) -> ParsedPredictions:
    """A point whose every sample runs the whole model (as a plain prediction file's)."""
    return ParsedPredictions(
        WHOLE_MODEL, PredictionFormat.SIMPLE, np.zeros(n, np.int64), None, None
    )


def _read_predictions(
    session: Any, task: Any, paths: list[Path], staging: Path, config: Any
) -> list[ParsedPredictions]:
    """The files named, paired and parsed exactly as for a submission (copies: ElasticBERT's
    pairs are joined next to them), each required to be of `task`."""
    if not paths:
        return []
    uploads = []
    for i, path in enumerate(paths):
        copy = staging / str(i)
        shutil.copyfile(path, copy)
        uploads.append(UploadedFile(path.name, copy))
    checked = CheckedSubmission()
    problems: list[Problem] = []
    _check_predictions(session, uploads, config.limits, checked, problems)
    for p in checked.predictions:
        if p.task_id != task.id:
            problems.append(
                Problem(f"a prediction file of {p.task_name}, not {task.name}", file=p.upload.name)
            )
    if problems:
        fail(InvalidInputError(f"{len(problems)} problem(s) in the prediction files", problems))
    manifest = manifest_of(task)
    return [
        parse_prediction_file(
            p.upload.path,
            manifest=manifest,
            n_rows=task.test_size,
            file_name=p.upload.name,
            max_bytes=config.limits.prediction_file_bytes,
        )
        for p in checked.predictions
    ]


def _report(
    task: str, job: CostJob, output: Any, points: list[ParsedPredictions]
) -> dict[str, Any]:
    """What the platform stores for each point: mean (and percentiles of) FLOPs per sample, the
    ELUE convention's mean, the parameter count, the counter version and rule-table hash."""

    rows = []
    for i, parsed in enumerate(points):
        entry = output.entries[job.result_entry[i]]
        flops = np.asarray(entry.per_sample_flops, dtype=np.float64)
        elue = np.asarray(
            entry.per_sample_flops_elue or entry.per_sample_flops_without_norm, dtype=np.float64
        )
        rows.append(
            {
                "file": parsed.file,
                "format": parsed.format.value,
                **flops_summary(flops),
                "flops_elue_mean": float(elue.mean()) if elue.size else None,
                "incomplete": list(entry.incomplete),
                "fvcore_agrees": entry.all_agree,
            }
        )
    return {
        "task": task,
        "params": output.params,
        "counter_version": output.counter_version,
        "rule_hash": output.rule_hash,
        "device": output.device,
        "points": rows,
    }

"""`paretoboard seed`: the whole first-run seed, idempotent, in short transactions.

1. The published ElasticBERT-base baseline (`core.seed.baseline`): rows at once, with the
   published scores; tasks whose points all have FLOPs get it as their baseline right away
   (SST-2).
2. The example submissions (`core.seed.examples`): trained, submitted, committed, then handed to
   `send` once committed (`core.db.outbox.unit_of_work`: the caller queues them to the worker,
   or evaluates them in process).
3. The baseline's missing FLOPs, counted by `count_flops` (the sandboxed cost job, supplied by
   the caller from `worker.seed_costs`), then the remaining tasks' baselines designated.

A second run finds everything in place and changes nothing. No transaction stays open while a
model trains or the sandbox counts, so the site and the worker keep writing meanwhile.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from core.db.outbox import Message, ScoreJob, unit_of_work
from core.db.session import session_factory, transaction
from core.errors import InvalidInputError
from core.seed.baseline import (
    BaselineOutcome,
    CountedFlops,
    FlopsRequest,
    apply_counted,
    designate_baselines,
    ensure_baseline,
    read_baselines,
)
from core.seed.examples import (
    DAN_FILE,
    DAN_NAME,
    ExampleOutcome,
    TaskData,
    attach_weights,
    dan_description,
    ensure_seed_user,
    find_example,
    load_task_data,
    submit_example,
    write_predictions,
)
from core.settings import Settings
from core.tokenizers import DEFAULT_TOKENIZER, cached_tokenizer, registered_tokenizers

if TYPE_CHECKING:
    from core.seed.dan import DanOutcome

Echo = Callable[[str], None]
FlopsCounter = Callable[[Sequence[FlopsRequest]], Mapping[FlopsRequest, CountedFlops]]
# (submission id, job id) -> what became of it, e.g. "queued to the worker"
Sender = Callable[[int, str], str]
Trainer = Callable[[TaskData], "DanOutcome"]


@dataclass
class SeedReport:
    baseline: BaselineOutcome | None = None
    counted: list[str] = field(default_factory=list)  # "TASK/point" counted by this run
    pending: list[str] = field(default_factory=list)  # still without FLOPs after this run
    examples: list[ExampleOutcome] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # phases that failed (the rest still ran)


def default_trainer(settings: Settings) -> Trainer:
    """examples/dan.py trained on the dev split with the service's own tokenizer."""
    from core.seed.dan import LabelledRows, train_and_predict

    tokenizers = registered_tokenizers(settings.storage.tokenizers_dir)
    if DEFAULT_TOKENIZER not in tokenizers:
        raise LookupError(
            f"tokenizer {DEFAULT_TOKENIZER!r} is not registered in {settings.storage.tokenizers_dir}"
        )
    tokenizer = cached_tokenizer(
        tokenizers[DEFAULT_TOKENIZER], max_tokens=settings.limits.max_tokens
    )

    def train(data: TaskData) -> DanOutcome:
        return train_and_predict(
            data.manifest,
            LabelledRows(texts=data.dev_texts, labels=data.dev_labels),
            data.test_inputs,
            tokenizer,
        )

    return train


def seed(
    engine: Engine,
    settings: Settings,
    *,
    baselines: Path | None,
    count_flops: FlopsCounter | None,
    send: Sender | None,
    examples: bool = True,
    trainer: Trainer | None = None,
    echo: Echo = print,
) -> SeedReport:
    """Seed (or complete) the database; see the module docstring."""
    report = SeedReport()
    spec = None
    if baselines is not None and baselines.is_file():
        spec = read_baselines(baselines)
        start = time.perf_counter()
        with transaction(engine) as session:
            out = ensure_baseline(session, spec)
            designate_baselines(session, out)
        report.baseline = out
        report.seconds["baseline_rows"] = time.perf_counter() - start
        _echo_baseline(out, echo)
    elif baselines is not None:
        echo(f"baseline: no {baselines}; skipped")

    if examples:
        start = time.perf_counter()
        try:
            report.examples.append(
                _seed_dan(engine, settings, send, trainer or default_trainer(settings), echo)
            )
        except (LookupError, OSError) as exc:  # e.g. no registered tokenizer
            report.errors.append(f"examples: {exc}")
            echo(f"example: not seeded: {exc}")
        report.seconds["examples"] = time.perf_counter() - start

    if spec is not None and report.baseline is not None and report.baseline.to_count:
        todo = report.baseline.to_count
        names = ", ".join(f"{r.task}/{r.exit_layer}L" for r in todo)
        if count_flops is None:
            report.pending = [f"{r.task}/{r.exit_layer}L" for r in todo]
            echo(f"baseline: FLOPs not counted (counting disabled): {names}")
        else:
            echo(f"baseline: counting FLOPs in the sandbox for {names} ...")
            start = time.perf_counter()
            try:
                counted = count_flops(todo)
            except Exception as exc:  # sandbox unavailable, job failed: the next seed retries
                report.pending = [f"{r.task}/{r.exit_layer}L" for r in todo]
                report.errors.append(f"baseline FLOPs: {type(exc).__name__}: {exc}")
                echo(f"baseline: counting failed ({type(exc).__name__}: {exc}); left pending")
                return report
            with transaction(engine) as session:
                report.counted = apply_counted(session, spec, counted)
                designated = designate_baselines(session)
            report.seconds["baseline_flops"] = time.perf_counter() - start
            report.baseline.designated += designated.designated
            echo(
                f"baseline: counted {', '.join(report.counted)} in "
                f"{report.seconds['baseline_flops']:.0f} s"
            )
            if designated.designated:
                echo(f"baseline: now the baseline of {', '.join(designated.designated)}")
    return report


def _echo_baseline(out: BaselineOutcome, echo: Echo) -> None:
    what = "created" if out.created else "present"
    echo(f"baseline: submission {out.submission_id} {what}")
    if out.points_created:
        echo(f"baseline: points added: {', '.join(out.points_created)}")
    if out.points_updated:
        echo(f"baseline: points updated from the file: {', '.join(out.points_updated)}")
    for task in out.skipped_tasks:
        echo(f"baseline: {task} is published but not imported here; skipped")
    if out.designated:
        echo(f"baseline: now the baseline of {', '.join(out.designated)}")
    if out.kept:
        echo(f"baseline: {', '.join(out.kept)} keep the baseline an operator chose")


def _seed_dan(
    engine: Engine, settings: Settings, send: Sender | None, trainer: Trainer, echo: Echo
) -> ExampleOutcome:
    outcome = ExampleOutcome(name=DAN_NAME)
    with transaction(engine) as session:
        user = ensure_seed_user(session)
        owner_id = user.id
        existing = find_example(session, owner_id, DAN_NAME)
        if existing is not None:
            outcome.submission_id = existing.id
            outcome.existing_state = existing.state.value
            echo(
                f"example: {DAN_NAME!r} present (submission {existing.id}, {existing.state.value})"
            )
            return outcome
        tasks = load_task_data(session)

    lines: list[str] = []
    predictions: dict[str, list[str]] = {}
    weights: dict[str, dict[str, Any]] = {}
    for data in tasks:
        start = time.perf_counter()
        trained = trainer(data)
        if trained.skipped is not None:
            outcome.skipped[data.name] = trained.skipped
            lines.append(f"{data.name}: not submitted ({trained.skipped}).")
            continue
        predictions[data.name] = trained.predictions
        if trained.state is not None:
            weights[data.name] = trained.state
        outcome.tasks.append(data.name)
        held = trained.holdout_performance
        lines.append(
            f"{data.name}: trained on {len(data.dev_texts) - trained.holdout_rows:,} dev rows, "
            f"epoch {trained.best_epoch} kept; {held:.1f} on the {trained.holdout_rows} held-out "
            "dev rows."
            if held is not None
            else f"{data.name}: trained on the dev split."
        )
        echo(
            f"example: DAN trained on {data.name} dev in {time.perf_counter() - start:.1f} s"
            + (f" (held-out dev: {held:.1f})" if held is not None else "")
        )
    if not predictions:
        echo("example: DAN: no task could be trained; nothing submitted")
        return outcome

    def deliver(message: Message) -> bool:
        """After the commit: say what was submitted, then queue it (or say how to run it)."""
        assert isinstance(message, ScoreJob)
        sid = message.submission_id
        echo(f"example: {DAN_NAME!r} submitted (submission {sid}: {', '.join(outcome.tasks)})")
        if send is None:
            echo(f"example: not queued; run `paretoboard evaluate {sid}`")
            return False
        echo(f"example: submission {sid}: {send(sid, message.job_id)}")
        return True

    with tempfile.TemporaryDirectory(prefix="paretoboard-seed-") as tmp:
        files = {t: write_predictions(Path(tmp), t, p) for t, p in predictions.items()}
        try:
            with (
                session_factory(engine)() as session,
                unit_of_work(session, deliver),
            ):
                sub, job_id = submit_example(
                    session,
                    settings,
                    owner_id=owner_id,
                    name=DAN_NAME,
                    description=dan_description(lines),
                    model=DAN_FILE,
                    predictions=files,
                )
                attach_weights(session, settings, sub, weights)
                outcome.submission_id, outcome.job_id = sub.id, job_id
        except InvalidInputError as exc:  # another seed created it meanwhile
            echo(f"example: {DAN_NAME!r} not created: {exc.message}")
            for problem in exc.problems:
                echo(f"  - {problem}")
            return outcome
    return outcome

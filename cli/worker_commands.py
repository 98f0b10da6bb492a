"""`paretoboard worker`, `evaluate ID`, `reconcile`: the evaluation pipeline from the shell."""

from __future__ import annotations

import logging
import os

import typer

from cli.common import session_scope, settings
from cli.serve_commands import fresh_metrics_dir
from core.db.session import engine_for
from core.settings import Settings, get_settings

log = logging.getLogger("paretoboard.worker")


def worker(
    queues: str = typer.Option("score,cost", help="comma-separated queues to consume"),
    concurrency: int = typer.Option(1, help="processes; keep 1 per GPU for the cost queue"),
    beat: bool = typer.Option(
        False, "--beat", help="also run the reconciler schedule (one per site)"
    ),
    loglevel: str = typer.Option("INFO"),
    cpu_only: bool = typer.Option(
        False,
        "--cpu-only",
        help="count on the CPU and take cost jobs from `cost-cpu` instead of `cost`",
    ),
    metrics_port: int | None = typer.Option(
        None,
        envvar="PARETOBOARD_WORKER_METRICS_PORT",
        help="serve this worker's Prometheus metrics on this port (all its processes merged)",
    ),
) -> None:
    """Start a Celery worker (Redis broker from PARETOBOARD_BROKER__URL)."""
    from core.logging_setup import configure_logging

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    if cpu_only:
        os.environ["PARETOBOARD_LIMITS__COST_DEVICE"] = "cpu"
        get_settings.cache_clear()
        wanted = list(dict.fromkeys("cost-cpu" if q == "cost" else q for q in wanted))
    s = settings()
    fmt = s.log_format.value
    configure_logging(fmt, loglevel)
    lower_priority(s.worker.nice)  # before the pool and the sandboxes start: they inherit it
    if metrics_port is not None:
        # Before anything imports prometheus_client: pool processes write their values there.
        fresh_metrics_dir("paretoboard-worker-metrics-")
    _check_cost_device(s, wanted, concurrency)
    _check_sandbox_totals(s, wanted)

    from celery import signals

    from jobs.app import WORKER_TASKS, app_for

    def _logging(loglevel: object = None, **_: object) -> None:
        configure_logging(fmt, loglevel if isinstance(loglevel, str | int) else "INFO")

    signals.setup_logging.connect(_logging, weak=False)  # Celery then leaves logging to us
    if metrics_port is not None:
        from worker.metrics import serve_multiprocess

        serve_multiprocess(metrics_port)
        log.info("worker metrics on port %s", metrics_port)
    argv = [
        *(["--quiet"] if fmt == "json" else []),  # no banner between the JSON lines
        "worker",
        f"--queues={','.join(wanted)}",
        # one node name per queue set: a score and a cost worker can share a host
        f"--hostname={'-'.join(wanted)}@%h",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        "--prefetch-multiplier=1",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv += ["--beat", f"--schedule={s.storage.data_dir / 'celerybeat-schedule'}"]
    if "preflight" in wanted:
        from worker.preflight import announce

        announce(s)  # the web waits for a pre-flight check only while one of these is alive
    celery = app_for(s)
    celery.conf.include = [WORKER_TASKS]  # the tasks are shared tasks: they bind to this app
    celery.worker_main(argv)


def lower_priority(nice: int) -> None:
    """Raise this process's niceness to `nice` (never lower it: an unprivileged process could
    not give back what a `nice` it was started under took)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.nice(nice - current)
    log.info("worker CPU niceness %s", max(nice, current))


def _check_sandbox_totals(s: Settings, queues: list[str]) -> None:
    """Workers that run sandboxes: say which whole-sandbox totals no cgroup bounds here."""
    from jobs.app import COST_QUEUES, PREFLIGHT_QUEUE
    from worker.sandbox import SandboxUnavailableError
    from worker.sandbox.cgroup import startup_report

    if not set(queues) & {*COST_QUEUES, PREFLIGHT_QUEUE}:
        return
    try:
        startup_report(require=s.limits.sandbox_require_cgroup)
    except SandboxUnavailableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


def _check_cost_device(s: Settings, queues: list[str], concurrency: int) -> None:
    """Say which device cost jobs run on; refuse a GPU worker running two jobs on one GPU."""
    from jobs.app import COST_QUEUES
    from worker.device import detect_device

    if not set(queues) & set(COST_QUEUES):
        return

    try:
        device = detect_device(s.limits.cost_device)
    except RuntimeError as exc:  # cost_device=cuda on a host without CUDA
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    if device == "cpu":
        if "cost" in queues and s.limits.cost_device != "cpu":
            log.warning(
                "no CUDA device on this host: cost jobs from the `cost` queue will be counted "
                "on the CPU; start this worker with --cpu-only (queue `cost-cpu`) to keep it "
                "off the GPU queue"
            )
        else:
            log.info("cost jobs are counted on the CPU on this worker")
        return
    gpus = _visible_gpus()
    log.info("cost jobs are counted on CUDA (%s GPU(s) visible)", gpus)
    if concurrency > 1:
        typer.echo(
            "error: one cost job per GPU (GPU memory is not bounded per job): run this worker "
            "with --concurrency 1, and one worker per GPU (CUDA_VISIBLE_DEVICES=N)",
            err=True,
        )
        raise typer.Exit(code=1)


def _visible_gpus() -> int:
    import torch

    return int(torch.cuda.device_count())


def evaluate(
    submission_id: int = typer.Argument(..., help="submission id"),
    device: str = typer.Option("", help="cpu or cuda (default: the settings' cost_device)"),
) -> None:
    """Run the whole pipeline for one submission in the foreground (operators)."""
    from core.models import Submission, SubmissionState
    from worker.device import detect_device
    from worker.pipeline import evaluate as run

    s = settings()
    run(
        engine_for(s.database_url),
        s,
        submission_id,
        device=device or detect_device(s.limits.cost_device),
    )
    with session_scope() as session:
        sub = session.get(Submission, submission_id)
        assert sub is not None
        typer.echo(f"submission {submission_id}: {sub.state.value}: {sub.state_message}")
        if sub.error_detail:
            typer.echo(sub.error_detail, err=True)
        if sub.state is not SubmissionState.DONE:
            raise typer.Exit(code=1)


def reconcile(
    older_than: int = typer.Option(0, help="seconds unchanged before re-enqueueing (0: settings)"),
    orphans_older_than: float | None = typer.Option(
        None,
        min=0,
        help="seconds before an unreferenced blob is removed (default: "
        "storage.orphan_grace_seconds)",
    ),
) -> None:
    """Re-enqueue submissions stuck in an active state (run periodically, or use --beat); remove
    the staging folders and orphan blobs that killed uploads left."""
    import datetime as dt
    import functools

    from core.leftovers import clean_leftovers
    from core.storage import blob_store
    from jobs import records
    from jobs.send import send_count, send_score
    from worker.reconcile import reconcile as run

    s = settings()
    done = run(
        engine_for(s.database_url),
        s,
        send_score=functools.partial(send_score, s),
        send_count=functools.partial(send_count, s),
        older_than=dt.timedelta(seconds=older_than) if older_than else None,
        # An explicit --older-than re-sends whatever the broker says about running jobs.
        records=None if older_than else lambda ids: records.read_records(s, ids),
    )
    for r in done:
        what = f"re-enqueued (job {r.job_id})" if r.job_id else "failed after too many attempts"
        typer.echo(f"submission {r.submission_id} ({r.state.value}): {what}")
    if not done:
        typer.echo("nothing stuck")
    # What killed uploads left: staging folders of dead requests, blobs no submission uses.
    cleaned = clean_leftovers(
        s.storage.data_dir,
        engine_for(s.database_url),
        blob_store(s),
        grace_seconds=s.storage.orphan_grace_seconds
        if orphans_older_than is None
        else orphans_older_than,
    )
    for name in cleaned.staging:
        typer.echo(f"removed staging folder {name}")
    for sha in cleaned.blobs:
        typer.echo(f"removed orphan blob {sha}")
    typer.echo(f"leftovers: {cleaned.summary()} removed" if cleaned else "no leftovers")


def recount(
    device: str = typer.Option("", help="cpu or cuda (default: the settings' cost_device)"),
    baseline: bool = typer.Option(
        True, "--baseline/--no-baseline", help="also count the published baseline's points again"
    ),
) -> None:
    """Count every stored measured result again under the current counter (idempotent)."""
    from cli.seed_commands import baseline_recount
    from worker.device import detect_device
    from worker.recount import recount as run

    s = settings()

    def progress(i: int, n: int, submission_id: int, outcome: str) -> None:
        typer.echo(f"recount [{i}/{n}] submission {submission_id}: {outcome}")

    report = run(
        engine_for(s.database_url),
        s,
        device=device or detect_device(s.limits.cost_device),
        progress=progress,
    )
    if baseline:
        baseline_recount(s)
    total = len(report.recounted) + len(report.failed)
    typer.echo(
        f"recount: {len(report.recounted)} submission(s) recounted ({report.results} results), "
        f"{len(report.failed)} could not be (kept as incomplete)"
        if total
        else "recount: nothing to do (every result is counted by the current counter and rules)"
    )

"""The Celery application: Redis broker and backend, the queues, late acks, prefetch 1.

One configured app per broker per process (`app_for`), used by every sender (`jobs.send`) and by
the worker command; the worker's tasks (`worker.tasks`) are shared tasks, bound to whichever app
runs them, so this package never imports the worker.

`score` (trusted, database): scoring, preparing cost jobs, storing cost reports, reconciling.
`cost` / `cost-cpu` (sandboxed user code, no database): running cost jobs. A cost worker gets
its whole job in the message and sends a report back to `score`.
"""

from __future__ import annotations

import threading

from celery import Celery
from kombu.entity import Queue

from core.settings import Settings

SCORE_QUEUE = "score"  # fast, no user code
COST_QUEUE = "cost"  # sandboxed user code (GPU where there is one)
COST_CPU_QUEUE = "cost-cpu"  # the same, for workers kept to the CPU
COST_QUEUES = (COST_QUEUE, COST_CPU_QUEUE)
SCORE_TASK = "paretoboard.score"
COUNT_TASK = "paretoboard.count"  # prepare a cost job and send it to a cost queue (score queue)
COST_TASK = "paretoboard.cost"  # run a cost job in the sandbox (cost queues)
REPORT_TASK = "paretoboard.cost_report"  # store a cost worker's report (score queue)
RECONCILE_TASK = "paretoboard.reconcile"
LEFTOVERS_TASK = "paretoboard.leftovers"  # staging folders and orphan blobs (core.leftovers)
LEFTOVERS_EVERY_SECONDS = 3600.0
PREFLIGHT_QUEUE = "preflight"  # the web waits on these: a worker of its own, never behind a job
PREFLIGHT_TASK = "paretoboard.preflight"  # capture the model, match the weights (no database)

WORKER_TASKS = "worker.tasks"  # the worker command imports it before it runs the app
_apps: dict[tuple[str, str], Celery] = {}
_lock = threading.Lock()


def configure(celery: Celery, settings: Settings) -> Celery:
    """Apply the settings to a Celery app."""
    limits = settings.limits
    celery.conf.update(
        broker_url=settings.broker.url.get_secret_value(),
        result_backend=settings.broker.result_backend.get_secret_value(),
        broker_connection_timeout=3,  # fail fast: the reconciler re-sends what was not sent
        task_queues=[Queue(q) for q in (SCORE_QUEUE, *COST_QUEUES, PREFLIGHT_QUEUE)],  # type: ignore[no-untyped-call]
        task_default_queue=SCORE_QUEUE,
        task_routes={
            SCORE_TASK: {"queue": SCORE_QUEUE},
            RECONCILE_TASK: {"queue": SCORE_QUEUE},
            COUNT_TASK: {"queue": SCORE_QUEUE},
            REPORT_TASK: {"queue": SCORE_QUEUE},
            COST_TASK: {"queue": settings.worker.cost_queue},
            PREFLIGHT_TASK: {"queue": PREFLIGHT_QUEUE},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=limits.task_soft_seconds,
        task_time_limit=limits.task_hard_seconds,
        task_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        task_ignore_result=True,
        # An unacked message returns to the queue after this long. It must outlast the hard time
        # limit, or a job still running would be delivered twice. Recovery does not wait for
        # it: the reconciler re-sends a dead worker's job (new job id) once its lease expires
        # (jobs.records), and the late copy is then skipped as superseded.
        broker_transport_options={"visibility_timeout": limits.task_hard_seconds + 300},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "reconcile": {
                "task": RECONCILE_TASK,
                "schedule": float(limits.reconcile_every_seconds),
                # rounds missed while no score worker ran are not all run at once afterwards
                "options": {"expires": float(limits.reconcile_every_seconds)},
            },
            "leftovers": {
                "task": LEFTOVERS_TASK,
                "schedule": LEFTOVERS_EVERY_SECONDS,
                "options": {"expires": LEFTOVERS_EVERY_SECONDS},
            },
        },
    )
    return celery


def app_for(settings: Settings) -> Celery:
    """The process's Celery app for `settings`' broker, configured on first use.

    The web, the reconciler, the CLI and the workers all send through it (`jobs.send`); the
    worker command also runs it, after importing the tasks (`WORKER_TASKS`).
    """
    key = (
        settings.broker.url.get_secret_value(),
        settings.broker.result_backend.get_secret_value(),
    )
    with _lock:
        app = _apps.get(key)
        if app is None:
            app = _apps[key] = configure(Celery("paretoboard"), settings)
        return app

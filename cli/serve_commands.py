"""`paretoboard serve`: the web service under uvicorn with several worker processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import typer

from cli.common import settings
from core.logging_setup import uvicorn_log_config

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def fresh_metrics_dir(prefix: str) -> Path:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty folder (before prometheus_client is imported).

    The folder named by the variable is emptied (stale files of a previous run would be summed
    into the new one's values); without it, a new temporary folder is made.
    """
    named = os.environ.get(MULTIPROC_ENV)
    path = Path(named) if named else Path(tempfile.mkdtemp(prefix=prefix))
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 in a container)"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(
        1, min=1, help="server processes; /metrics merges them (PROMETHEUS_MULTIPROC_DIR)"
    ),
    log_level: str = typer.Option("info", help="uvicorn's log level"),
) -> None:
    """Run the web service (uvicorn, `web.app:create_app`), logs in PARETOBOARD_LOG_FORMAT."""
    import uvicorn

    s = settings()
    if workers > 1 or os.environ.get(MULTIPROC_ENV):
        fresh_metrics_dir("paretoboard-server-metrics-")
    uvicorn.run(
        "web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=uvicorn_log_config(s.log_format.value, log_level.upper()),
        log_level=log_level,
        server_header=False,
        proxy_headers=False,  # served on its own port, behind no proxy (docs/deploy.md)
        timeout_graceful_shutdown=20,
    )

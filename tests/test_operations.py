"""The production stack by hand: the commands docker-compose.yml runs, as separate processes.

PostgreSQL, Redis (append-only, with a password), `migrate`, the web service with 2 server
processes, a score worker and a cost worker are started from the services' own `command` and
`environment` in docker-compose.yml (container paths mapped to local folders, each service
given only the secret files compose gives it). A submission goes end to end through the API;
then the cost worker and Redis are stopped while a second submission waits in the cost queue,
restarted, and that submission still completes. Along the way: /readyz and /metrics tell the
truth, /metrics is merged across the server processes, workers log JSON lines carrying the
submission id, and the cost worker never opens a database.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import noisy_predictions, raw_gold
from tests.processes import free_port
from tests.submission_helpers import TINY_MODEL

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
BIN = Path(sys.executable).parent
TOKENIZERS = REPO.parent / "shared" / "data" / "tokenizers"
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _interpolate(value: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value).replace("$$", "$")


@dataclass
class Service:
    """One compose service's command and environment, with container paths made local."""

    command: list[str]
    environment: dict[str, str]
    secrets: list[str]


def _service(name: str, compose_env: dict[str, str], paths: dict[str, str]) -> Service:
    spec = yaml.safe_load(COMPOSE.read_text())["services"][name]
    command = [_interpolate(str(c), compose_env) for c in spec["command"]]
    environment = {k: _interpolate(str(v), compose_env) for k, v in spec["environment"].items()}

    def local(text: str) -> str:
        for container, host in paths.items():
            text = text.replace(container, host)
        return text

    return Service(
        [local(c) for c in command],
        {k: local(v) for k, v in environment.items()},
        list(spec.get("secrets", [])),
    )


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
        out.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-3000:]


@dataclass
class Stack:
    root: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    web: str = ""
    score_metrics: int = 0
    cost_metrics: int = 0
    cost_data: Path = Path()

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs.values())

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (httpx.HTTPError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.3)


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail("PostgreSQL binaries not found (scripts/ensure-postgres.sh installs them)")
    return Path(initdb).parent


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@pytest.fixture
def stack(tmp_path: Path, sandbox_jobs_dir: Path, elue_dir: Path) -> Iterator[Stack]:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.fail("redis-server not found (scripts/ensure-redis.sh installs it)")
    # Folders the postgres user and the sandbox uid can reach (pytest's tmp folders are 0700).
    root = Path(tempfile.mkdtemp(prefix="paretoboard-ops-", dir="/tmp"))
    root.chmod(0o755)
    stack = Stack(root)
    try:
        _start(stack, tmp_path, redis_server, sandbox_jobs_dir, elue_dir)
        yield stack
    finally:
        for proc in reversed(stack.procs.values()):
            proc.stop(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _start(stack: Stack, tmp_path: Path, redis_server: str, jobs_dir: Path, elue_dir: Path) -> None:
    root = stack.root
    pg_port, redis_port, web_port = free_port(), free_port(), free_port()
    stack.score_metrics, stack.cost_metrics = free_port(), free_port()
    stack.web = f"http://127.0.0.1:{web_port}"

    # postgres (compose: postgres:15 with a volume): a fresh cluster
    pgdata = root / "pg"
    pgdata.mkdir()
    if os.geteuid() == 0:  # initdb refuses root
        if subprocess.run(["id", "postgres"], check=False, capture_output=True).returncode:
            subprocess.run(["useradd", "--system", "postgres"], check=True)
        shutil.chown(pgdata, "postgres")
    pgbin = _postgres_bin()
    subprocess.run(
        [
            *_as_postgres(),
            str(pgbin / "initdb"),
            "-D",
            str(pgdata / "data"),
            "-U",
            "postgres",
            "--auth=trust",
        ],
        check=True,
        capture_output=True,
    )
    pg = Proc(
        "postgres",
        [
            *_as_postgres(),
            str(pgbin / "postgres"),
            "-D",
            str(pgdata / "data"),
            "-p",
            str(pg_port),
            "-h",
            "127.0.0.1",
            "-k",
            str(pgdata),
        ],
        dict(os.environ),
        tmp_path / "postgres.log",
    )
    stack.procs["postgres"] = pg.start()
    stack.wait_for(
        "PostgreSQL",
        lambda: (
            subprocess.run(
                [str(pgbin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(pg_port)],
                check=False,
            ).returncode
            == 0
        ),
        60,
    )
    subprocess.run(
        [str(pgbin / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "pb"],
        check=True,
    )

    # redis (compose: append-only file, a password)
    password = secrets.token_hex(16)
    redis_dir = root / "redis"
    redis_dir.mkdir()
    stack.procs["redis"] = Proc(
        "redis",
        [
            redis_server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(redis_port),
            "--dir",
            str(redis_dir),
            "--requirepass",
            password,
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
        dict(os.environ),
        tmp_path / "redis.log",
    ).start()

    # the secret files, as docker/make-secrets.sh writes them (local host names)
    broker = f"redis://:{password}@127.0.0.1:{redis_port}"
    all_secrets = {
        "paretoboard_db": json.dumps(
            {"url": f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/pb"}
        ),
        "paretoboard_broker": json.dumps({"url": f"{broker}/0", "result_backend": f"{broker}/1"}),
        "paretoboard_secret_key": secrets.token_urlsafe(40),
    }
    app_data = root / "appdata"
    app_data.mkdir()
    stack.cost_data = root / "costdata"
    stack.cost_data.mkdir()
    tasks = root / "tasks"
    tasks.mkdir()
    shutil.copytree(elue_dir / "SST-2", tasks / "SST-2")
    paths = {
        "/var/lib/paretoboard": str(app_data),
        "/srv/tasks": str(tasks),
        "/srv/tokenizers": str(TOKENIZERS),
        "/tmp/paretoboard-jobs": str(jobs_dir),
    }
    # No GPU here: the CPU variant of the cost worker, and the score side sends to its queue.
    compose_env = {"PARETOBOARD_WEB_WORKERS": "2", "PARETOBOARD_COST_QUEUE": "cost-cpu"}

    def proc(service: str, name: str, **replace: str) -> Proc:
        spec = _service(service, compose_env, paths)
        secret_dir = root / f"secrets-{name}"
        secret_dir.mkdir()
        for secret in spec.secrets:
            (secret_dir / secret).write_text(all_secrets[secret] + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
        env.update(spec.environment)
        env["PARETOBOARD_SECRETS_DIR"] = str(secret_dir)
        # On a shared host run as root, the sandbox's uid pool is locked host-wide in its
        # default state folder: a private one would let two test runs share a uid.
        env.pop("PARETOBOARD_SANDBOX_STATE_DIR", None)
        argv = [replace.get(a, a) for a in spec.command]
        return Proc(name, argv, env, tmp_path / f"{name}.log")

    migrate = proc("migrate", "migrate")
    done = subprocess.run(
        migrate.argv, env=migrate.env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SST-2" in done.stdout

    server = proc("server", "server", **{"0.0.0.0": "127.0.0.1", "8000": str(web_port)})
    assert server.argv[-2:] == ["--workers", "2"]
    stack.procs["server"] = server.start()
    stack.procs["worker-score"] = proc(
        "worker-score", "worker-score", **{"9101": str(stack.score_metrics)}
    ).start()
    cost = proc("worker-cost-cpu", "worker-cost", **{"9101": str(stack.cost_metrics)})
    cost.env["PARETOBOARD_STORAGE__DATA_DIR"] = str(stack.cost_data)  # no shared uploads
    stack.procs["worker-cost"] = cost.start()
    stack.wait_for(
        "the web service to be ready",
        lambda: httpx.get(f"{stack.web}/readyz", timeout=5).status_code == 200,
        120,
    )
    for port in (stack.score_metrics, stack.cost_metrics):
        stack.wait_for(
            f"worker metrics on {port}",
            lambda port=port: httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200,
            120,
        )


def _submit(stack: Stack, token: str, name: str, elue_dir: Path, seed: int) -> int:
    gold = raw_gold(elue_dir, "SST-2")
    preds = noisy_predictions(gold, "SST-2", seed=seed)
    tsv = "index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(preds))
    created = httpx.post(
        f"{stack.web}/api/v1/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"name": name},
        files=[
            ("model", ("tiny_static.py", TINY_MODEL.read_bytes())),
            ("predictions", ("SST-2.tsv", tsv.encode())),
        ],
        timeout=60,
    )
    assert created.status_code == 202, created.text
    return int(created.json()["id"])


def _submission(stack: Stack, token: str, sid: int) -> dict[str, Any]:
    got = httpx.get(
        f"{stack.web}/api/v1/submissions/{sid}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    got.raise_for_status()
    body: dict[str, Any] = got.json()
    return body


def _samples(text: str, name: str) -> dict[str, float]:
    """{'label="value",...': value} for every sample of one metric in an exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            out[labels.removeprefix(name)] = float(value)
    return out


def _metrics(url: str) -> str:
    return httpx.get(url, timeout=30).text


@pytest.mark.slow  # about 30 s; the default run keeps the suite under 15 min
def test_compose_commands_run_a_submission_through_restarts(stack: Stack, elue_dir: Path) -> None:
    web = stack.web
    email = "operator-test@example.org"
    made = httpx.post(
        f"{web}/api/v1/users",
        json={"email": email, "display_name": "Ops", "password": "correct horse battery"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    tok = httpx.post(
        f"{web}/api/v1/tokens",
        json={"email": email, "password": "correct horse battery", "name": "ops"},
        timeout=30,
    )
    assert tok.status_code == 201, tok.text
    token = tok.json()["token"]

    # 1. a submission end to end through the API
    first = _submit(stack, token, "first", elue_dir, seed=3)
    stack.wait_for(
        "the first submission to finish",
        lambda: _submission(stack, token, first)["state"] in ("done", "failed"),
        240,
    )
    sub = _submission(stack, token, first)
    assert sub["state"] == "done", (sub["state_message"], sub["error_detail"], stack.logs())
    assert sub["results"][0]["points"][0]["cost_status"] == "counted"

    # 2. /metrics is merged across the 2 server processes: every scrape sees every request
    for _ in range(30):
        assert httpx.get(f"{web}/healthz", timeout=10).status_code == 200
    key = '{method="GET",route="/healthz",status="200"}'
    counts = {
        _samples(_metrics(f"{web}/metrics"), "paretoboard_http_request_duration_seconds_count")[key]
        for _ in range(6)
    }
    assert counts == {30.0}, counts
    pids = {
        line
        for line in stack.procs["server"].log.read_text().splitlines()
        if "Started server process" in line
    }
    assert len(pids) == 2, pids  # two server processes did answer
    # the workers' own metrics: evaluations on the score worker, sandbox runs on the cost worker
    score_text = _metrics(f"http://127.0.0.1:{stack.score_metrics}/")
    assert _samples(score_text, "paretoboard_evaluations_total") == {'{outcome="done"}': 1.0}
    cost_text = _metrics(f"http://127.0.0.1:{stack.cost_metrics}/")
    assert _samples(cost_text, "paretoboard_cost_jobs_total") == {'{device="cpu"}': 1.0}
    assert _samples(cost_text, "paretoboard_stage_duration_seconds_count") == {
        '{stage="cost_job"}': 1.0
    }

    # 3. the cost worker goes away; a second submission waits in the cost queue
    stack.procs["worker-cost"].stop()
    second = _submit(stack, token, "second", elue_dir, seed=4)
    stack.wait_for(
        "the second cost job to be queued",
        lambda: (
            "cost worker" in _submission(stack, token, second)["state_message"]
            and _samples(_metrics(f"{web}/metrics"), "paretoboard_queue_depth").get(
                '{queue="cost-cpu"}'
            )
            == 1.0
        ),
        120,
    )
    assert _submission(stack, token, second)["state"] == "counting"

    # 4. Redis stops: readiness and metrics say so; then it comes back from its append-only file
    stack.procs["redis"].stop()
    ready = httpx.get(f"{web}/readyz", timeout=30)
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"].startswith("down")
    down = _metrics(f"{web}/metrics")
    assert _samples(down, "paretoboard_dependency_up") == {
        '{dependency="database"}': 1.0,
        '{dependency="broker"}': 0.0,
    }
    assert _samples(down, "paretoboard_queue_depth") == {}  # unknown, not zero
    stack.procs["redis"].start()
    stack.wait_for(
        "readiness after Redis restarted",
        lambda: httpx.get(f"{web}/readyz", timeout=10).status_code == 200,
        60,
    )
    assert (
        _samples(_metrics(f"{web}/metrics"), "paretoboard_queue_depth")['{queue="cost-cpu"}'] == 1.0
    )
    stack.procs["worker-cost"].start()
    stack.wait_for(
        "the queued submission to finish after the restarts",
        lambda: _submission(stack, token, second)["state"] in ("done", "failed"),
        240,
    )
    sub = _submission(stack, token, second)
    assert sub["state"] == "done", (sub["state_message"], sub["error_detail"], stack.logs())

    # 5. the cost worker never opened a database (the default would be a SQLite file here)
    assert not list(stack.cost_data.rglob("*.db")), list(stack.cost_data.rglob("*"))

    # 6. JSON log lines; every line about a task carries its submission id
    for name, sids in (("worker-score", {first, second}), ("worker-cost", {first, second})):
        lines = [
            json.loads(line)
            for line in stack.procs[name].log.read_text().splitlines()
            if line.startswith("{")
        ]
        assert lines, stack.procs[name].tail()
        about_tasks = [
            line
            for line in lines
            if line["logger"].startswith(("worker.", "celery.app.trace", "celery.worker.strategy"))
            # the reconciler's and the leftovers' own runs are about no submission
            and "paretoboard.reconcile" not in line["message"]
            and "paretoboard.leftovers" not in line["message"]
            and not line["logger"].startswith("worker.reconcile")
        ]
        assert about_tasks, name
        assert {line["submission_id"] for line in about_tasks} <= sids, [
            line for line in about_tasks if line["submission_id"] not in sids
        ]
        assert {line["submission_id"] for line in about_tasks} == sids

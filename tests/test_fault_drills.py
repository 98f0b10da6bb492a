"""Fault drills (docs/reliability.md): real Redis, real Celery workers, real PostgreSQL.

Each drill runs a score worker (with the reconciler schedule) and a cost worker on default
recovery settings, breaks something, and checks that every accepted submission reaches done or
a clear failed state exactly once. The recovery time of each is printed (`-s` shows it).
The web drills add the web process (uvicorn), which reaches PostgreSQL through a TCP proxy the
test can cut (tests/tcp_proxy.py; the shared server itself is never stopped).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from celery import Celery
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from core.db import migrate
from core.db.session import make_engine, transaction
from core.models import Result, ResultCost, Submission, SubmissionFile, SubmissionState
from core.settings import REPO_ROOT, BrokerSettings, LimitsSettings, Settings, StorageSettings
from core.storage import LocalBlobStore
from core.submissions.service import SubmissionDraft, UploadedFile, create_submission
from core.tasks import service as task_service
from core.tokenizers import registered_tokenizers
from core.users import service as user_service
from tests.helpers import noisy_predictions, raw_gold, write_predictions
from tests.processes import free_port, stop, uvicorn_command, wait_until_up
from tests.submission_helpers import blob_files
from tests.tcp_proxy import TcpProxy
from worker import attempts
from worker.celery_app import SCORE_TASK, configure
from worker.pipeline import queue_submission

pytestmark = pytest.mark.slow
MODELS = Path(__file__).parent / "models"
PB = Path(sys.executable).with_name("paretoboard")
FINAL = {SubmissionState.DONE, SubmissionState.FAILED}


@dataclass
class RedisServer:
    """A redis-server of this test's own, with an append-only file, that it can crash."""

    port: int
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ],
            stdout=(self.folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port).ping():
                    return
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def crash(self) -> None:
        assert self.proc is not None
        stop(self.proc, signal.SIGKILL)


@dataclass
class Drill:
    settings: Settings
    engine: Engine
    env: dict[str, str]
    celery: Celery
    tmp: Path
    redis: RedisServer
    predictions: Path
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    web: subprocess.Popen[bytes] | None = None
    web_port: int = 0
    proxy: TcpProxy | None = None

    def start_web(self) -> str:
        """uvicorn on the drill's database through a TCP proxy; returns its base URL."""
        url = make_url(self.env["PARETOBOARD_DB__URL"])
        if self.proxy is None:
            self.proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
            self.web_port = free_port()
        proxied = url.set(host="127.0.0.1", port=self.proxy.port)
        env = {**self.env, "PARETOBOARD_DB__URL": proxied.render_as_string(hide_password=False)}
        log = self.tmp / "web.log"
        self.web = subprocess.Popen(
            uvicorn_command(self.web_port, "--log-level", "warning"),
            cwd=REPO_ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{self.web_port}"
        wait_until_up(base, [self.web], log)
        return base

    def token(self, email: str) -> dict[str, str]:
        with transaction(self.engine) as session:
            user = user_service.create_user(
                session, email=email, display_name="Drill", password="correct horse battery"
            )
            _, token = user_service.create_token(session, user=user, name="drill")
        return {"Authorization": f"Bearer {token}"}

    def upload(self, client: httpx.Client, headers: dict[str, str], name: str) -> httpx.Response:
        files = [
            ("model", ("tiny_static.py", (MODELS / "tiny_static.py").read_bytes())),
            ("predictions", ("SST-2.tsv", self.predictions.read_bytes())),
        ]
        return client.post("/api/v1/submissions", headers=headers, data={"name": name}, files=files)

    def leftovers(self) -> tuple[list[str], int]:
        """Staging folders, and blobs no submission row names."""
        staging = self.settings.storage.data_dir / "staging"
        folders = sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []
        with transaction(self.engine) as session:
            named = set(session.scalars(select(SubmissionFile.sha256)))
        blobs = blob_files(self.settings.storage.uploads_dir)
        return folders, sum(1 for b in blobs if b.name not in named)

    def start(self, kind: str) -> None:
        """Start the `score` worker (with the reconciler schedule) or the `cost` worker."""
        extra = ["--beat"] if kind == "score" else []
        self.workers[kind] = subprocess.Popen(
            [str(PB), "worker", "--queues", kind, "--loglevel", "INFO", *extra],
            env=self.env,
            stdout=(self.tmp / f"{kind}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, kind: str) -> None:
        """SIGKILL a whole worker (main process, pool, sandbox)."""
        stop(self.workers.pop(kind), signal.SIGKILL)

    def submit(self, model: str, name: str) -> int:
        with transaction(self.engine) as session:
            sub = create_submission(
                session,
                LocalBlobStore(self.settings.storage.uploads_dir),
                owner_id=None,
                draft=SubmissionDraft(name=name),
                model=UploadedFile(model, MODELS / model),
                predictions=[UploadedFile("SST-2.tsv", self.predictions)],
                limits=self.settings.limits,
                tokenizers=registered_tokenizers(self.settings.storage.tokenizers_dir),
            )
            job_id = queue_submission(sub)
            sid = sub.id
        attempts.mark_queued(self.settings, sid, job_id, attempts.Stage.SCORE)
        self.celery.send_task(SCORE_TASK, args=[sid, job_id])
        return sid

    def record(self, sid: int) -> dict[str, object]:
        raw = redis.Redis(port=self.redis.port).get(attempts.KEY.format(sid))
        return json.loads(raw) if raw else {}

    def wait_record(self, sid: int, stage: str, phase: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rec = self.record(sid)
            if (rec.get("stage"), rec.get("state"), rec.get("phase")) == (stage, "running", phase):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"submission {sid} never ran {stage}/{phase}: {rec}\n{self.logs()}")
            time.sleep(0.2)

    def wait_final(self, sids: list[int], timeout: float) -> dict[int, Submission]:
        deadline = time.monotonic() + timeout
        while True:
            with transaction(self.engine) as session:
                subs = {sid: session.get(Submission, sid) for sid in sids}
            if all(s is not None and s.state in FINAL for s in subs.values()):
                return {sid: s for sid, s in subs.items() if s is not None}
            if time.monotonic() > deadline:
                states = {sid: (s.state, s.state_message) for sid, s in subs.items() if s}
                pytest.fail(f"not final: {states}\n{self.logs()}")
            time.sleep(0.5)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log")
        )

    def check_once(self, sub: Submission, state: SubmissionState) -> None:
        """Final exactly once: one final timeline entry, one result and cost at most."""
        assert sub.state is state, (sub.state_message, sub.error_detail)
        finals = [e["state"] for e in sub.timeline if e["state"] in ("done", "failed")]
        assert finals == [state.value]
        with transaction(self.engine) as session:
            results = session.scalar(select(func.count()).where(Result.submission_id == sub.id))
            costs = session.scalar(
                select(func.count())
                .select_from(ResultCost)
                .join(Result, Result.id == ResultCost.result_id)
                .where(Result.submission_id == sub.id)
            )
        assert results == 1
        assert costs == (1 if state is SubmissionState.DONE else 0)


@pytest.fixture
def drill(
    tmp_path: Path, pg_databases: object, sandbox_jobs_dir: Path, elue_dir: Path
) -> Iterator[Drill]:
    url = pg_databases.create()  # type: ignore[attr-defined]
    migrate.upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        for data in task_service.read_task_folders(elue_dir / "SST-2"):
            task_service.import_task(session, data)
    server = RedisServer(free_port(), tmp_path / "redis")
    server.folder.mkdir()
    server.start()
    broker = f"redis://127.0.0.1:{server.port}"
    data = tmp_path / "var"
    data.mkdir()
    settings = Settings(
        db={"url": url},  # type: ignore[arg-type]
        broker=BrokerSettings(url=f"{broker}/0", result_backend=f"{broker}/1"),  # type: ignore[arg-type]
        storage=StorageSettings(data_dir=data, jobs_dir=sandbox_jobs_dir),
        limits=LimitsSettings(),  # the default recovery settings
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_DB__URL=url,
        PARETOBOARD_BROKER__URL=f"{broker}/0",
        PARETOBOARD_BROKER__RESULT_BACKEND=f"{broker}/1",
        PARETOBOARD_STORAGE__DATA_DIR=str(data),
        PARETOBOARD_STORAGE__JOBS_DIR=str(sandbox_jobs_dir),
    )
    gold = raw_gold(elue_dir, "SST-2")
    preds = write_predictions(tmp_path / "SST-2.tsv", noisy_predictions(gold, "SST-2", seed=3))
    d = Drill(settings, engine, env, configure(Celery("drill"), settings), tmp_path, server, preds)
    try:
        yield d
    finally:
        for proc in d.workers.values():
            stop(proc)
        if d.web is not None:
            stop(d.web)
        if d.proxy is not None:
            d.proxy.cut()
        if server.proc is not None:
            stop(server.proc)
        engine.dispose()


def _report(name: str, seconds: float) -> None:
    print(f"\nDRILL {name}: recovered in {seconds:.1f} s")


def test_cost_worker_killed_mid_count(drill: Drill) -> None:
    drill.start("score")
    drill.start("cost")
    sid = drill.submit("slow_static.py", "slow")
    drill.wait_record(sid, "cost", "model")
    time.sleep(2)
    drill.kill("cost")
    killed = time.monotonic()
    drill.start("cost")  # a supervisor restarts it; its old message stays unacked
    sub = drill.wait_final([sid], timeout=300)[sid]
    _report("cost worker SIGKILL mid-count -> done", time.monotonic() - killed)
    drill.check_once(sub, SubmissionState.DONE)
    assert any("after its worker stopped (in cost: model)" in e["message"] for e in sub.timeline)


def test_score_worker_killed_mid_score(drill: Drill) -> None:
    drill.start("cost")
    drill.start("score")
    with drill.engine.connect() as blocker:
        # Hold scoring mid-stage: its writes wait on this lock, its lease is running.
        blocker.execute(text("LOCK TABLE results IN ACCESS EXCLUSIVE MODE"))
        sid = drill.submit("tiny_static.py", "tiny")
        drill.wait_record(sid, "score", "scoring")
        time.sleep(1)
        drill.kill("score")
        killed = time.monotonic()
        blocker.rollback()
    drill.start("score")
    sub = drill.wait_final([sid], timeout=300)[sid]
    _report("score worker SIGKILL mid-score -> done", time.monotonic() - killed)
    drill.check_once(sub, SubmissionState.DONE)
    assert any("after its worker stopped (in score" in e["message"] for e in sub.timeline)


def test_redis_restart_with_jobs_queued(drill: Drill) -> None:
    sids = [drill.submit("tiny_static.py", f"queued-{i}") for i in range(3)]  # no worker yet
    time.sleep(2)  # past the append-only file's one-second fsync
    drill.redis.crash()
    drill.redis.start()
    restarted = time.monotonic()
    drill.start("score")
    drill.start("cost")
    subs = drill.wait_final(sids, timeout=300)
    _report("Redis crash and restart with 3 jobs queued -> all done", time.monotonic() - restarted)
    for sub in subs.values():
        drill.check_once(sub, SubmissionState.DONE)


def test_poison_job_fails_after_n_attempts(drill: Drill) -> None:
    """A job that kills its worker's process every time (as the OOM killer would) ends failed,
    as the submitter's fault, after `max_attempts`; the worker goes on serving others."""
    drill.start("score")
    drill.start("cost")
    sid = drill.submit("slow_static.py", "poison")
    kills: list[int] = []
    done = threading.Event()

    def oom_killer() -> None:
        while not done.is_set():
            rec = drill.record(sid)
            pid = rec.get("pid")
            running = (rec.get("stage"), rec.get("state"), rec.get("phase")) == (
                "cost",
                "running",
                "model",
            )
            if running and isinstance(pid, int) and pid not in kills:
                time.sleep(1)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # the pool process running the job
                    kills.append(pid)
            time.sleep(0.1)

    killer = threading.Thread(target=oom_killer, daemon=True)
    killer.start()
    started = time.monotonic()
    try:
        sub = drill.wait_final([sid], timeout=400)[sid]
    finally:
        done.set()
        killer.join()
    _report("poison job killing its worker every time -> failed", time.monotonic() - started)
    max_attempts = drill.settings.limits.max_attempts
    assert len(kills) == max_attempts
    drill.check_once(sub, SubmissionState.FAILED)
    assert sub.fault == "user"
    assert f"Your model stopped its cost worker {max_attempts} times" in sub.state_message
    assert sub.attempts > max_attempts  # every delivery counted
    good = drill.submit("tiny_static.py", "after-poison")
    drill.check_once(drill.wait_final([good], timeout=300)[good], SubmissionState.DONE)


def _body(
    model: bytes, predictions: bytes, boundary: str, stall: threading.Event
) -> Iterator[bytes]:
    """A multipart upload that sends its files, then stalls inside a last part until `stall`."""
    for field_name, filename, data in (
        ("model", "tiny_static.py", model),
        ("predictions", "SST-2.tsv", predictions),
    ):
        yield (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; '
                f'filename="{filename}"\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    yield f'--{boundary}\r\nContent-Disposition: form-data; name="description"\r\n\r\n'.encode()
    while not stall.wait(0.2):
        yield b"still uploading "


def test_web_killed_mid_upload(drill: Drill) -> None:
    """SIGKILL of the web process while an upload streams in: the request's staging folder is
    left; the restarted process removes it before serving (and orphan blobs past the grace
    period, planted here as a process killed while storing would leave them); no row; the
    retried upload is accepted and done exactly once."""
    drill.start("score")
    drill.start("cost")
    base = drill.start_web()
    headers = drill.token("killed@example.org")
    boundary = "drill" + os.urandom(8).hex()
    stall = threading.Event()
    body = _body(
        (MODELS / "tiny_static.py").read_bytes(), drill.predictions.read_bytes(), boundary, stall
    )
    staging = drill.settings.storage.data_dir / "staging"

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{base}/api/v1/submissions",
                headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                content=body,
                timeout=120,
            )

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.monotonic() + 60
    while not (staging.is_dir() and any(staging.iterdir())):
        assert time.monotonic() < deadline, "the upload never reached its staging folder"
        time.sleep(0.1)
    time.sleep(1)  # well into the body
    assert drill.web is not None
    stop(drill.web, signal.SIGKILL)
    killed = time.monotonic()
    stall.set()
    sender.join(timeout=30)
    left, _ = drill.leftovers()
    assert left, "the killed request left no staging folder (the drill did not hit mid-upload)"
    # What a process killed while storing blobs leaves (older than the grace period).
    store = LocalBlobStore(drill.settings.storage.uploads_dir)
    orphan, _ = store.put_bytes(b"a blob whose submission was never committed")
    partial = store.root / ".incoming-killed"
    partial.write_bytes(b"half a blob")
    for path in (store.path(orphan), partial):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    drill.start_web()
    assert drill.leftovers()[0] == []  # staging cleaned before the first request is served
    deadline = time.monotonic() + 60
    while store.exists(orphan) or partial.exists():  # the blob store is walked in the background
        assert time.monotonic() < deadline, "orphan blobs not removed after the restart"
        time.sleep(0.1)
    cleaned = time.monotonic() - killed
    with transaction(drill.engine) as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 0
    with httpx.Client(base_url=base, timeout=60) as client:
        retried = drill.upload(client, headers, "retried")
    assert retried.status_code == 202, retried.text
    sid = retried.json()["id"]
    accepted = time.monotonic() - killed
    sub = drill.wait_final([sid], timeout=300)[sid]
    _report("web SIGKILL mid-upload -> restarted, leftovers removed", cleaned)
    _report("web SIGKILL mid-upload -> retried upload accepted", accepted)
    _report("web SIGKILL mid-upload -> retried upload done", time.monotonic() - killed)
    drill.check_once(sub, SubmissionState.DONE)
    with transaction(drill.engine) as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 1
    assert drill.leftovers() == ([], 0)


def test_database_cut_under_traffic(drill: Drill) -> None:
    """PostgreSQL unreachable from the web process (its proxy cut) under page, API and upload
    traffic: every answer is a page or a 503 with Retry-After (no 500, no dropped connection);
    uploads refused meanwhile leave nothing; the ones accepted are each done exactly once."""
    drill.start("score")
    drill.start("cost")
    base = drill.start_web()
    assert drill.proxy is not None
    headers = drill.token("traffic@example.org")
    answers: list[tuple[str, int, str | None]] = []
    errors: list[str] = []
    stop_traffic = threading.Event()
    paths = ["/", "/tasks/SST-2", "/api/v1/tasks", "/api/v1/leaderboard", "/submissions/1"]

    def traffic() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop_traffic.is_set():
                for path in paths:
                    try:
                        reply = client.get(path, headers={"Accept": "text/html"})
                    except httpx.HTTPError as exc:
                        errors.append(f"{path}: {type(exc).__name__}: {exc}")
                        continue
                    answers.append((path, reply.status_code, reply.headers.get("retry-after")))
                time.sleep(0.05)

    reader = threading.Thread(target=traffic, daemon=True)
    reader.start()
    accepted: list[int] = []
    refused = 0
    with httpx.Client(base_url=base, timeout=60) as client:
        first = drill.upload(client, headers, "before the cut")
        assert first.status_code == 202, first.text
        accepted.append(first.json()["id"])
        time.sleep(1)
        drill.proxy.cut()
        cut_at = len(answers)
        for i in range(4):
            during = drill.upload(client, headers, f"during the cut {i}")
            assert during.status_code == 503, during.text
            assert int(during.headers["retry-after"]) >= 1
            refused += 1
            time.sleep(1)
        during_cut = answers[cut_at:]
        drill.proxy.restore()
        restored = time.monotonic()
        while True:
            after = drill.upload(client, headers, "after the cut")
            if after.status_code == 202:
                break
            assert after.status_code == 503, after.text
            assert time.monotonic() - restored < 60, "uploads not accepted after the restore"
            time.sleep(0.2)
        recovered = time.monotonic() - restored
        accepted.append(after.json()["id"])
    stop_traffic.set()
    reader.join(timeout=60)
    assert errors == []
    assert during_cut, "no page was asked for while the database was away"
    assert {code for _, code, _ in answers} <= {200, 404, 503}, answers
    assert all(int(ra or 0) >= 1 for _, code, ra in answers if code == 503)
    assert any(code == 503 for _, code, _ in during_cut)
    assert answers[-1][1] in (200, 404)  # pages answer again
    subs = drill.wait_final(accepted, timeout=400)
    refused_pages = sum(1 for _, code, _ in during_cut if code == 503)
    print(
        f"\nDRILL PostgreSQL cut: {len(during_cut)} page/API answers while cut, {refused_pages} 503"
    )
    _report("PostgreSQL cut under traffic -> upload accepted after restore", recovered)
    for sub in subs.values():
        drill.check_once(sub, SubmissionState.DONE)
    with transaction(drill.engine) as session:
        ids = set(session.scalars(select(Submission.id)))
    assert ids == set(accepted)  # the refused uploads left no row
    assert refused == 4
    assert drill.leftovers() == ([], 0)


def test_data_folder_full(drill: Drill) -> None:
    """The data folder (a 16 MiB tmpfs mounted here) fills up: an upload answers 507 with a
    clear message and leaves nothing; once there is room again the same upload is accepted and
    done exactly once."""
    data = drill.settings.storage.data_dir
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        drill.start("score")
        drill.start("cost")
        base = drill.start_web()
        headers = drill.token("full@example.org")
        st = os.statvfs(data)
        filler = data / "filler"
        with filler.open("wb") as out:
            left = st.f_bavail * st.f_frsize - 4096
            while left > 0:
                left -= out.write(b"\0" * min(left, 1 << 20))
        with httpx.Client(base_url=base, timeout=60) as client:
            full = drill.upload(client, headers, "full")
            assert full.status_code == 507, full.text
            assert full.json()["error"]["code"] == "insufficient_storage"
            assert "storage is full" in full.json()["error"]["message"]
            assert drill.leftovers() == ([], 0)
            with transaction(drill.engine) as session:
                assert session.scalar(select(func.count()).select_from(Submission)) == 0
            filler.unlink()
            freed = time.monotonic()
            again = drill.upload(client, headers, "full")
        assert again.status_code == 202, again.text
        accepted = time.monotonic() - freed
        sid = again.json()["id"]
        sub = drill.wait_final([sid], timeout=300)[sid]
        _report("data folder full -> upload accepted once there is room", accepted)
        _report("data folder full -> that upload done", time.monotonic() - freed)
        drill.check_once(sub, SubmissionState.DONE)
        assert drill.leftovers() == ([], 0)
    finally:
        for kind in list(drill.workers):
            stop(drill.workers.pop(kind))
        if drill.web is not None:
            stop(drill.web)
            drill.web = None
        subprocess.run(["umount", "-l", str(data)], check=False)

"""Benchmark: a bounded loopback load test: uploads drained by real workers while boards are read.

    .venv/bin/python -m bench.bench_load [--db sqlite|postgresql] [--uploads 50] [--rps 200]
        [--seconds 60] [--submissions 10000] [--cost-workers 2] [--web-workers 2]
        [--web-port 8811] [--redis-port 6411] [--drain-timeout 900] [--elue-dir ../shared/data/elue]

Builds a fresh database (SQLite file in a temporary folder by default; `--db postgresql`: a new
database on the server named by PARETOBOARD_TEST_PG_URL, dropped at the end) holding the ELUE
tasks and `--submissions` bulk-inserted entries (`bench.bench_leaderboard.populate`), and one
account with an API token per upload. Starts, on loopback, everything a site runs: a Redis
server of its own (`--redis-port`, no persistence), the web app (`paretoboard serve`, with
`--web-workers` processes, on `--web-port`), one score worker and `--cost-workers` cost workers
(`paretoboard worker`, each one process, the cost ones counting on the CPU in the bubblewrap
sandbox). Then:

- reads: an open-loop schedule of `--rps` GETs per second for `--seconds` seconds, round robin
  over the overall and SST-2 boards (API and pages), a task's plot data and a submission's page
  and API record; each latency counts from the moment the request was due (so a server that
  falls behind is charged for the queueing, no coordinated omission);
- uploads: 1 s into the reads, `--uploads` submissions at once, each from its own account:
  `examples/`-sized model file (`tests/models/tiny_static.py`, a 16-wide embedding classifier)
  and an SST-2 prediction file; one answered 503 with Retry-After (the web processes' upload
  slots are full: web/admission.py) is sent again after that long, as the light client does;
  then polled until every one is done or failed (`--uploads 0`: reads alone, the workers idle).

Prints the error rate of reads (non-200 answers or transport errors; target 0) and of uploads
(a final answer other than 202, or a submission that ended failed; those accepted after a
503 + Retry-After are counted apart, not as errors), read latency p50/p95/p99 (target p95 < 150 ms),
the achieved read rate, the drain time (first upload sent to last submission finished), and the
peak resident memory of each process (each worker's whole process tree, sandboxes included,
sampled every 0.2 s). Asserts nothing; every loop is bounded; every process it started is
stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import httpx
import uvloop
from sqlalchemy import func, select

from bench.bench_leaderboard import _database, populate
from core.db import migrate
from core.db.session import make_engine, transaction
from core.models import Submission, SubmissionState, Visibility
from core.settings import REPO_ROOT
from core.users import service as user_service
from tests.helpers import noisy_predictions, raw_gold

MODEL = REPO_ROOT / "tests" / "models" / "tiny_static.py"
PB = Path(sys.executable).with_name("paretoboard")
TERMINAL = {"done", "failed", "withdrawn"}


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid` and every process under it now, in seconds."""
    children, total, stack = _children(), 0, [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Peak RSS of each named process: its own, and that of its whole tree (summed)."""

    def __init__(self, pids: dict[str, int], every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pids, self.every = pids, every
        self.own: dict[str, int] = dict.fromkeys(pids, 0)
        self.tree: dict[str, int] = dict.fromkeys(pids, 0)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            children = _children()
            for name, pid in self.pids.items():
                tree, stack = 0, [pid]
                while stack:
                    p = stack.pop()
                    tree += _rss_kib(p)
                    stack.extend(children.get(p, []))
                self.own[name] = max(self.own[name], _rss_kib(pid))
                self.tree[name] = max(self.tree[name], tree)
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self.join()


@dataclass
class Reads:
    latencies: list[float] = field(default_factory=list)  # ms, from when the request was due
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    wall: float = 0.0


IN_FLIGHT = 64  # reads sent at once at most; the rest wait their turn (charged to latency)
READ_TIMEOUT = 30.0  # seconds for one read's answer, as the httpx client this replaced
ACCEPT_ENCODING = "gzip, deflate"  # what httpx asks for: large bodies come gzipped


class _Answer:
    """httptools parser callbacks: only whether the message is complete."""

    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool]:
    """Send one GET on a kept-alive connection; (status, whether the server keeps it open)."""
    writer.write(request)
    answer = _Answer()
    parser = httptools.HttpResponseParser(answer)
    while not answer.complete:
        data = await reader.read(1 << 16)
        if not data:
            raise ConnectionResetError("the server closed the connection mid-answer")
        parser.feed_data(data)
    return parser.get_status_code(), parser.should_keep_alive()


async def _read_load(base: str, paths: list[str], rps: int, seconds: float) -> Reads:
    """The reads: `rps` GETs a second over `IN_FLIGHT` kept-alive connections.

    The client is asyncio streams and httptools (uvicorn's own response parser), not httpx:
    httpx spent about 2 ms of CPU per read here, a fifth of a core at 100 reads/s on the same
    2 cores as the server, so the client, starved of CPU on a loaded host, set the read rate."""
    out = Reads()
    url = httpx.URL(base)
    host, port = url.host, url.port or 80
    queue: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()

    async def connection() -> None:
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (item := await queue.get()) is not None:
            path, due = item
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Accept-Encoding: {ACCEPT_ENCODING}\r\n\r\n"
            ).encode()
            try:
                if streams is None:
                    streams = await asyncio.wait_for(
                        asyncio.open_connection(host, port), READ_TIMEOUT
                    )
                status, keep = await asyncio.wait_for(_get(*streams, request), READ_TIMEOUT)
                ok, key = status == 200, f"{path}: HTTP {status}"
            except (OSError, TimeoutError, httptools.HttpParserError) as exc:
                ok, key, keep = False, f"{path}: {type(exc).__name__}", False
            if not keep and streams is not None:
                streams[1].close()
                streams = None
            out.latencies.append((time.perf_counter() - due) * 1000)
            if not ok:
                out.errors[key] = out.errors.get(key, 0) + 1
        if streams is not None:
            streams[1].close()

    workers = [asyncio.create_task(connection()) for _ in range(IN_FLIGHT)]
    start = time.perf_counter()
    n = int(rps * seconds)
    for i in range(n):
        due = start + i / rps
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((paths[i % len(paths)], due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    out.sent, out.wall = n, time.perf_counter() - start
    return out


@dataclass
class Uploads:
    statuses: list[int] = field(default_factory=list)  # each upload's final answer
    upload_ms: list[float] = field(default_factory=list)  # first try to final answer
    ids: list[int] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)  # 503 + Retry-After answers per upload
    started: float = 0.0


MAX_TRIES = 200  # per upload; with Retry-After of a few seconds, bounded by the drain timeout
READY_SECONDS = 300  # for every process to start (imports take long on a loaded host)


async def _uploads(base: str, tokens: list[str], tsv: bytes, delay: float) -> Uploads:
    """Every upload at once; a 503 with Retry-After (the server's upload slots are full) is sent
    again after that many seconds (plus jitter), as the light client does."""
    await asyncio.sleep(delay)
    out = Uploads(started=time.perf_counter())
    model = MODEL.read_bytes()
    rng = random.Random(15)
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:

        async def one(i: int, token: str) -> None:
            t0 = time.perf_counter()
            retries = 0
            while True:
                response = await client.post(
                    "/api/v1/submissions",
                    headers={"Authorization": f"Bearer {token}"},
                    data={"name": f"load-{i}"},
                    files=[
                        ("model", ("tiny_static.py", model)),
                        ("predictions", ("SST-2.tsv", tsv)),
                    ],
                )
                wait = response.headers.get("retry-after", "")
                if response.status_code != 503 or not wait.isdigit() or retries >= MAX_TRIES:
                    break
                retries += 1
                await asyncio.sleep(int(wait) + rng.uniform(0, 1))
            out.upload_ms.append((time.perf_counter() - t0) * 1000)
            out.statuses.append(response.status_code)
            out.retries.append(retries)
            if response.status_code == 202:
                out.ids.append(int(response.json()["id"]))
            else:
                print(f"upload {i}: HTTP {response.status_code} {response.text[:300]}", flush=True)

        await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    return out


def _wait_drained(url: str, ids: list[int], timeout: float) -> tuple[dict[str, int], float]:
    """Poll the database until every submission is terminal; (states, when the last was)."""
    engine = make_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with transaction(engine) as session:
                rows = session.execute(
                    select(Submission.state, func.count())
                    .where(Submission.id.in_(ids))
                    .group_by(Submission.state)
                ).all()
            states = {s.value: n for s, n in rows}
            if not ids or all(s in TERMINAL for s in states):
                return states, time.perf_counter()
            if time.monotonic() > deadline:
                return states, float("nan")
            time.sleep(0.5)
    finally:
        engine.dispose()


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def _stack(
    url: str, folder: Path, args: argparse.Namespace
) -> Iterator[tuple[str, dict[str, subprocess.Popen[bytes]]]]:
    jobs = Path(tempfile.mkdtemp(prefix="paretoboard-jobs-", dir="/tmp"))
    jobs.chmod(0o755)  # the sandbox uid must traverse it
    data = folder / "var"
    data.mkdir()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    redis_url = f"redis://127.0.0.1:{args.redis_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_DB__URL=url,
        PARETOBOARD_BROKER__URL=f"{redis_url}/0",
        PARETOBOARD_BROKER__RESULT_BACKEND=f"{redis_url}/1",
        PARETOBOARD_STORAGE__DATA_DIR=str(data),
        PARETOBOARD_STORAGE__JOBS_DIR=str(jobs),
        PARETOBOARD_LOG_FORMAT="text",
    )
    base = f"http://127.0.0.1:{args.web_port}"
    try:
        procs["redis"] = _spawn(
            [
                "redis-server",
                "--port",
                str(args.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            env,
            folder / "redis.log",
        )
        procs["web"] = _spawn(
            [
                str(PB),
                "serve",
                "--port",
                str(args.web_port),
                "--workers",
                str(args.web_workers),
                "--log-level",
                "warning",
            ],
            env,
            folder / "web.log",
        )
        procs["score worker"] = _spawn(
            [str(PB), "worker", "--queues", "score", "--loglevel", "INFO"],
            env,
            folder / "score.log",
        )
        for k in range(args.cost_workers):
            procs[f"cost worker {k + 1}"] = _spawn(
                [str(PB), "worker", "--queues", "cost", "--loglevel", "INFO"],
                env,
                folder / f"cost{k + 1}.log",
            )
        deadline = time.monotonic() + READY_SECONDS
        while True:
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited; logs in {folder}")
            workers = [folder / "score.log"]
            workers += [folder / f"cost{k + 1}.log" for k in range(args.cost_workers)]
            ready = all(" ready." in log.read_text(errors="replace") for log in workers)
            try:
                if ready and httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the web app or a worker not ready within {READY_SECONDS} s; logs in {folder}"
                )
            time.sleep(0.3)
        yield base, procs
    finally:
        for proc in reversed(procs.values()):
            _stop(proc)
        shutil.rmtree(jobs, ignore_errors=True)


def _accounts(url: str, n: int) -> list[str]:
    engine = make_engine(url)
    tokens = []
    with transaction(engine) as session:
        for i in range(n):
            user = user_service.create_user(
                session, email=f"load{i}@bench.example", display_name=f"Load {i}", password="x" * 12
            )
            tokens.append(user_service.create_token(session, user=user, name="load")[1])
    engine.dispose()
    return tokens


def _a_listed_submission(url: str) -> int:
    engine = make_engine(url)
    with transaction(engine) as session:
        sid = session.scalar(
            select(func.min(Submission.id)).where(
                Submission.state == SubmissionState.DONE,
                Submission.visibility == Visibility.PUBLIC,
                Submission.hidden.is_(False),
            )
        )
    engine.dispose()
    assert sid is not None
    return int(sid)


def _q(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--rps", type=int, default=200, help="board and page reads per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long reads go on")
    parser.add_argument("--submissions", type=int, default=10_000, help="entries already listed")
    parser.add_argument("--cost-workers", type=int, default=2)
    parser.add_argument("--web-workers", type=int, default=2, help="`paretoboard serve --workers`")
    parser.add_argument("--web-port", type=int, default=8811)
    parser.add_argument("--redis-port", type=int, default=6411)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--elue-dir", type=Path, default=REPO_ROOT.parent / "shared/data/elue")
    parser.add_argument("--keep-logs", action="store_true", help="print the log folder, keep it")
    args = parser.parse_args()

    gold = raw_gold(args.elue_dir, "SST-2")
    preds = noisy_predictions(gold, "SST-2", seed=7)
    tsv = ("index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(preds))).encode()
    with ExitStack() as stack:
        url = stack.enter_context(_database(args.db))
        folder = Path(tempfile.mkdtemp(prefix="pb-load-"))
        if not args.keep_logs:
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
        t0 = time.perf_counter()
        migrate.upgrade(url)
        counts = populate(url, args.elue_dir, args.submissions, 0)
        tokens = _accounts(url, args.uploads)
        sid = _a_listed_submission(url)
        print(
            f"database ({args.db}): {counts['submissions']:,} submissions, "
            f"{counts['results']:,} results; built in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        paths = [
            "/api/v1/leaderboard",
            "/api/v1/tasks/SST-2/leaderboard",
            "/",
            "/tasks/SST-2",
            "/tasks/SST-2/plot.json",
            f"/submissions/{sid}",
            f"/api/v1/submissions/{sid}",
            "/api/v1/leaderboard?track=55M",
        ]
        base, procs = stack.enter_context(_stack(url, folder, args))
        # Fill every web process's caches: each request on a new connection, as many as
        # several times the processes (the kernel hands each connection to one of them).
        for path in paths:
            for _ in range(4 * args.web_workers):
                httpx.get(base + path, timeout=300)
        sampler = MemorySampler({name: p.pid for name, p in procs.items()})
        sampler.start()

        async def run() -> tuple[Reads, Uploads]:
            return await asyncio.gather(
                _read_load(base, paths, args.rps, args.seconds),
                _uploads(base, tokens, tsv, delay=1.0),
            )

        web_cpu = _cpu_seconds(procs["web"].pid)
        client_cpu = time.process_time()
        reads, uploads = uvloop.run(run())  # the client's loop: the server's
        web_cpu = _cpu_seconds(procs["web"].pid) - web_cpu
        client_cpu = time.process_time() - client_cpu
        states, last = _wait_drained(url, uploads.ids, args.drain_timeout)
        sampler.stop()
        dead = [n for n, p in procs.items() if p.poll() is not None]
        if args.keep_logs:
            print(f"logs: {folder}")

    errors = sum(reads.errors.values())
    failed_uploads = sum(1 for s in uploads.statuses if s != 202) + states.get("failed", 0)
    print(
        f"\n{args.db}; {counts['submissions']:,} listed entries; {args.web_workers} web "
        "process(es), one score "
        f"worker, {args.cost_workers} cost workers, Redis on :{args.redis_port}; load "
        f"{os.getloadavg()[0]:.2f} at the end\n"
    )
    print(
        f"reads: {reads.sent} sent at {args.rps}/s for {args.seconds:.0f} s; achieved "
        f"{reads.sent / reads.wall:.1f}/s; errors {errors} ({errors / max(reads.sent, 1):.2%})"
    )
    for key, n in sorted(reads.errors.items()):
        print(f"  {n:6d}  {key}")
    print(
        f"CPU while reading: the web processes {web_cpu:.1f} s ({1000 * web_cpu / reads.sent:.2f}"
        f" ms a read, uploads included), this client {client_cpu:.1f} s"
    )
    lat = reads.latencies
    print(
        f"read latency (ms, from when due): p50 {_q(lat, 50):.1f}  p95 {_q(lat, 95):.1f}  "
        f"p99 {_q(lat, 99):.1f}  max {max(lat):.1f}   (target p95 < 150 ms)"
    )
    retried = [r for r, s in zip(uploads.retries, uploads.statuses, strict=True) if r and s == 202]
    print(
        f"uploads: {len(uploads.statuses)} sent at once; final HTTP "
        f"{sorted(set(uploads.statuses))}; accepted at once "
        f"{sum(1 for r, s in zip(uploads.retries, uploads.statuses, strict=True) if not r and s == 202)}"
        f", accepted after 503 + Retry-After {len(retried)} ({sum(retried)} retries, at most "
        f"{max(retried, default=0)}); first try to accepted p50 {_q(uploads.upload_ms, 50):.0f} "
        f"ms, max {max(uploads.upload_ms, default=float('nan')):.0f} ms; final states {states}; errors {failed_uploads}"
    )
    if uploads.ids:
        drain = last - uploads.started
        print(f"drain: {drain:.1f} s from the first upload to the last submission finished")
    print("peak RSS (MiB): process / its whole tree")
    for name in sampler.own:
        print(f"  {name:<14} {sampler.own[name] / 1024:8.1f} / {sampler.tree[name] / 1024:8.1f}")
    if dead:
        print(f"exited during the run: {dead}")


if __name__ == "__main__":
    main()

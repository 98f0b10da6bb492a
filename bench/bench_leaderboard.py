"""Benchmark: leaderboard API latency with many submissions (cold, after a write, warm).

    .venv/bin/python -m bench.bench_leaderboard --submissions 100000 [--db postgresql|sqlite]
        [--workers 1] [--requests 300] [--concurrency 2] [--elue-dir ../shared/data/elue]
        [--seed 0]

Creates a fresh database (PostgreSQL: next to the admin database named by
PARETOBOARD_TEST_PG_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test; SQLite: a
file in a temporary folder, as the default install), migrates it, imports the ELUE tasks,
bulk-inserts the submissions (1-4 points on each of a random subset of tasks; a mix of measured,
self-reported, private, hidden, failed and unfinished ones) plus a self-reported baseline set on
every task, then serves the app with uvicorn on a free loopback port and times, per endpoint:

- cold: the first request after the server started (the leaderboard is computed),
- after private write: the first request once a private queued submission moved on (another
  process, committed): the board version does not move, so the cached body is served (checked
  to be the same body),
- after write: the first request once a listed result changed (another process, committed):
  the board version moved; a board quick to make is recomputed inline, a slow one is served
  from the previous version while it is recomputed in the background (stale while
  revalidating, `core.leaderboard.cache` rule 4),
- fresh after: seconds from that write until the body changed (polled every 50 ms; checked to
  change within 120 s),
- warm: `--requests` requests from `--concurrency` threads (p50, p95, requests per second).

Every loop is bounded; the server is stopped and the database dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url

from core.db import migrate
from core.db.session import make_engine, transaction
from core.leaderboard import set_task_baseline
from core.models import Result, Submission, SubmissionKind, SubmissionState, User, Visibility
from core.settings import REPO_ROOT
from core.tasks import service as task_service
from tests.processes import free_port, uvicorn_command

# Every bulk-inserted entry ran for ten minutes on 2026-11-25 (a finished one has its end time,
# as `core.submissions.state.set_state` stamps it).
STARTED = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
FINISHED = STARTED + dt.timedelta(minutes=10)
ADMIN_URL = os.environ.get(
    "PARETOBOARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Baseline curves (MFLOPs, performance): SST-2 as published by ELUE; the other tasks' 6- and
# 12-layer scores as published, at FLOPs scaled by their inputs' typical length (assumed).
BASELINES: dict[str, list[tuple[float, float]]] = {
    "SST-2": [(1059, 84.1), (1412, 85.7), (2118, 87.0), (4237, 88.6)],
    "SNLI": [(1900, 90.1), (3800, 91.3)],
    "SciTail": [(2600, 92.5), (5200, 93.8)],
    "MRPC": [(3500, 87.3), (7000, 87.9)],
    "STS-B": [(2100, 86.9), (4200, 87.6)],
}


@dataclass(frozen=True, slots=True)
class Timing:
    cold_ms: float
    after_private_ms: float
    after_write_ms: float
    fresh_after_s: float
    p50_ms: float
    p95_ms: float
    rps: float
    bytes: int
    status: int


@contextmanager
def _database(kind: str = "postgresql") -> Iterator[str]:
    """A new database (PostgreSQL: on the admin server; SQLite: a temporary file), dropped
    afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="pb-bench-db-") as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"pb_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _metrics(task: str, perf: float) -> dict[str, float]:
    if task == "MRPC":
        return {"accuracy": perf - 1.5, "f1": perf + 1.5}
    if task == "STS-B":
        return {"pearson": perf + 0.3, "spearman": perf - 0.3}
    return {"accuracy": perf}


def populate(url: str, elue_dir: Path, n_submissions: int, seed: int) -> dict[str, int]:
    """Tasks, users, submissions and results, bulk-inserted; returns row counts."""
    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    with transaction(engine) as session:
        for data in task_service.read_task_folders(elue_dir):
            task_service.import_task(session, data)
        tasks = {t.name: t.id for t in task_service.list_tasks(session)}
    curves = {
        name: (
            np.array([f for f, _ in pts], dtype=np.float64),
            np.array([p for _, p in pts], dtype=np.float64),
        )
        for name, pts in BASELINES.items()
        if name in tasks
    }
    names = sorted(curves)
    with transaction(engine) as session:
        user_ids = list(
            session.scalars(
                insert(User).returning(User.id, sort_by_parameter_order=True),
                [
                    {"email": f"u{i}@bench.example", "display_name": f"U{i}", "password_hash": "x"}
                    for i in range(max(1, n_submissions // 20))
                ],
            )
        )
        baseline_id = session.scalar(
            insert(Submission)
            .values(
                name="ElasticBERT-base",
                kind=SubmissionKind.SELF_REPORTED,
                state=SubmissionState.DONE,
                params=109_000_000,
                verified=True,
                started_at=STARTED,
                finished_at=FINISHED,
            )
            .returning(Submission.id)
        )
        assert baseline_id is not None
        subs: list[dict[str, Any]] = []
        for i in range(n_submissions):
            roll = rng.random()
            state, visibility, hidden, kind = (
                SubmissionState.DONE,
                Visibility.PUBLIC,
                False,
                SubmissionKind.MEASURED,
            )
            if roll < 0.04:
                state = SubmissionState.FAILED
            elif roll < 0.06:
                state = SubmissionState.COUNTING
            elif roll < 0.09:
                visibility = Visibility.PRIVATE
            elif roll < 0.10:
                hidden = True
            elif roll < 0.13:
                kind = SubmissionKind.SELF_REPORTED
            subs.append(
                {
                    "owner_id": user_ids[i % len(user_ids)],
                    "name": f"model-{i}",
                    "description": "benchmark entry",
                    "kind": kind,
                    "visibility": visibility,
                    "hidden": hidden,
                    "verified": bool(rng.random() < 0.1),
                    "state": state,
                    "params": int(math.exp(rng.uniform(math.log(4e6), math.log(340e6)))),
                    "timeline": [{"state": state.value, "at": "2026-11-25T00:00:00+00:00"}],
                    "started_at": STARTED,
                    "finished_at": FINISHED if state.is_final else None,  # as set_state does
                }
            )
        sub_ids = list(
            session.scalars(
                insert(Submission).returning(Submission.id, sort_by_parameter_order=True), subs
            )
        )
        results: list[dict[str, Any]] = []
        for name in names:
            xp, fp = curves[name]
            for f, p in zip(xp, fp, strict=True):
                results.append(_result(baseline_id, tasks[name], f"L{len(results)}", p, f * 1e6))
        for sid, sub in zip(sub_ids, subs, strict=True):
            quality = rng.normal(-0.5, 1.5)
            chosen = rng.choice(names, size=int(rng.integers(1, len(names) + 1)), replace=False)
            for name in chosen:
                xp, fp = curves[name]
                mflops = np.sort(rng.uniform(0.15, 1.4, size=int(rng.integers(1, 5))) * xp[-1])
                for k, f in enumerate(mflops):
                    perf = float(np.interp(f, xp, fp) + quality + rng.normal(0, 0.4))
                    row = _result(sid, tasks[name], f"exit{k + 1}", min(perf, 99.9), f * 1e6)
                    row["metrics"] = _metrics(name, row["performance"])
                    row["params"] = sub["params"]
                    if sub["state"] is not SubmissionState.DONE and rng.random() < 0.5:
                        row["flops_mean"] = None  # not counted yet / failed before counting
                    results.append(row)
        for start in range(0, len(results), 10_000):
            session.execute(insert(Result), results[start : start + 10_000])
        for name in names:
            set_task_baseline(session, task_name=name, submission_id=baseline_id)
        # A private submission still in the queue: what `_touch_private` moves on.
        session.add(
            Submission(
                owner_id=user_ids[0],
                name="private queued",
                visibility=Visibility.PRIVATE,
                state=SubmissionState.QUEUED,
                timeline=[],
            )
        )
    with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("ANALYZE" if url.startswith("sqlite") else "VACUUM ANALYZE"))
    engine.dispose()
    return {"tasks": len(tasks), "submissions": len(sub_ids) + 1, "results": len(results)}


def _result(sid: int, tid: int, point: str, perf: float, flops: float) -> dict[str, Any]:
    return {
        "submission_id": sid,
        "task_id": tid,
        "point": point,
        "performance": perf,
        "metrics": {"accuracy": perf},
        "cost_status": "counted",
        "flops_mean": flops,
        "flops_median": flops * 0.98,
        "flops_p10": flops * 0.7,
        "flops_p90": flops * 1.3,
        "flops_max": flops * 2.0,
        "macs_mean": flops / 2,
        "params": 109_000_000,
        "counter_versions": {"fvcore": "0.1.5.post20221221", "torch": "2.13.0"},
        "device": "cpu",
    }


@contextmanager
def _server(url: str, workers: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="pb-bench-") as data_dir:
        yield from _serve(url, workers, data_dir)


def _serve(url: str, workers: int, data_dir: str) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ)
    env.update({"PARETOBOARD_DB__URL": url, "PARETOBOARD_STORAGE__DATA_DIR": data_dir})
    cmd = uvicorn_command(
        port, "--workers", str(workers), "--log-level", "warning", "--no-access-log"
    )
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with code {proc.returncode}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not answer within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


IDENTITY = "identity "  # a path with this prefix is asked for without gzip (the bytes as they are)


def _request(path: str) -> tuple[str, dict[str, str]]:
    """(path, headers): httpx asks for gzip by default; `IDENTITY` + path asks for none."""
    if path.startswith(IDENTITY):
        return path.removeprefix(IDENTITY), {"Accept-Encoding": "identity"}
    return path, {}


def _get(client: httpx.Client, path: str) -> tuple[float, int, int, str]:
    """ms to the body's last byte as sent (a gzip body is not decoded: that is the client's
    work, native in a browser), status, bytes as sent, ETag."""
    url, headers = _request(path)
    start = time.perf_counter()
    with client.stream("GET", url, headers=headers) as response:
        sent = sum(len(chunk) for chunk in response.iter_raw())
    elapsed = (time.perf_counter() - start) * 1000
    return elapsed, response.status_code, sent, response.headers["etag"]


def _concurrent(base: str, path: str, n: int, concurrency: int) -> tuple[list[float], float]:
    """`n` requests from `concurrency` threads (each its own keep-alive client)."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]

    def run(count: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            mine = []
            for _ in range(count):
                ms, status, _, _ = _get(client, path)
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status}")
                mine.append(ms)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(run, c) for c in per_thread if c]:
            future.result()
    return latencies, time.perf_counter() - start


def _touch_private(url: str, step: int) -> None:
    """A write no public board depends on: a private queued submission's progress."""
    engine = make_engine(url)
    with transaction(engine) as session:
        sub = session.scalars(select(Submission).where(Submission.name == "private queued")).one()
        sub.state = SubmissionState.SCORING if step % 2 == 0 else SubmissionState.QUEUED
        sub.state_message = f"step {step}"
        sub.timeline = [*sub.timeline, {"state": sub.state.value, "at": f"step {step}"}]
    engine.dispose()


def _touch_result(url: str, perf_delta: float) -> None:
    """A write every benchmarked page depends on: a point of the SST-2 baseline moves (an ORM
    change of one row, as the workers and the API write, so the bump logs the submission it
    changed and the boards are recomputed incrementally: `core.leaderboard.source`)."""
    engine = make_engine(url)
    with transaction(engine) as session:
        rid = session.scalar(
            text(
                "SELECT min(r.id) FROM results r JOIN tasks t ON t.id = r.task_id "
                "WHERE t.name = 'SST-2' AND r.submission_id = t.baseline_submission_id"
            )
        )
        result = session.get(Result, rid)
        assert result is not None
        assert result.performance is not None
        result.performance += perf_delta
    engine.dispose()


def settle(base: str, path: str) -> None:
    """Request `path`, then wait until the server recomputes nothing in the background (its
    `/metrics`), so that the next request is answered from the latest board version."""
    deadline = time.monotonic() + 300
    for _ in range(2):  # the second request starts any refresh the first one's left stale
        _retrying(base, _request(path)[0])
        while True:
            metrics = _retrying(base, "/metrics").text
            found = re.search(r"^paretoboard_board_refreshes_in_flight (\S+)$", metrics, re.M)
            if found is None or float(found.group(1)) == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path}: background refreshes still running after 300 s")
            time.sleep(0.2)


def _retrying(base: str, path: str) -> httpx.Response:
    """GET on a new connection, again after a transport error (a loaded machine's keep-alive
    closes and probe time-outs are not what settling waits for)."""
    for attempt in range(5):
        try:
            return httpx.get(base + path, timeout=120)
        except httpx.TransportError:
            if attempt == 4:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def _fresh_after(client: httpx.Client, path: str, before: str, etag: str, written: float) -> float:
    """Seconds from the write until `path` answers a body other than `before`."""
    while etag == before:
        if time.perf_counter() - written > 120:
            raise RuntimeError(f"{path}: still unchanged 120 s after a write (stale cache)")
        time.sleep(0.05)
        etag = _get(client, path)[3]
    return time.perf_counter() - written


def measure(
    base: str, url: str, paths: list[str], n: int, concurrency: int, workers: int
) -> dict[str, Timing]:
    out: dict[str, Timing] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        cold = {p: _get(client, p) for p in paths}
    # Every worker process has its own cache: fill them all before the warm runs.
    for path in paths:
        _concurrent(base, path, 4 * workers * concurrency, concurrency)
    warm: dict[str, tuple[list[float], float]] = {}
    for path in paths:
        warm[path] = _concurrent(base, path, n, concurrency)
    after: dict[str, float] = {}
    fresh: dict[str, float] = {}
    after_private: dict[str, float] = {}
    for step, path in enumerate(paths):
        settle(base, path)  # the previous step's write may still be refreshing this board
        with httpx.Client(base_url=base, timeout=120) as client:
            before = _get(client, path)[3]
            _touch_private(url, step)  # another process; the version does not move
            ms, _, _, etag = _get(client, path)
        if etag != before:
            raise RuntimeError(f"{path}: a private submission's progress changed the body")
        after_private[path] = ms
        _touch_result(url, 0.01)  # cumulative: every body differs from its cold one
        written = time.perf_counter()
        with httpx.Client(base_url=base, timeout=120) as client:
            after[path], _, _, etag = _get(client, path)
            fresh[path] = _fresh_after(client, path, before, etag, written)
        _concurrent(base, path, 4 * workers * concurrency, concurrency)  # refill the others
    for path in paths:
        latencies, wall = warm[path]
        q = statistics.quantiles(latencies, n=100, method="inclusive")
        out[path] = Timing(
            cold_ms=cold[path][0],
            after_private_ms=after_private[path],
            after_write_ms=after[path],
            fresh_after_s=fresh[path],
            p50_ms=q[49],
            p95_ms=q[94],
            rps=len(latencies) / wall,
            bytes=cold[path][2],
            status=cold[path][1],
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--requests", type=int, default=300, help="warm requests per endpoint")
    parser.add_argument("--concurrency", type=int, default=2, help="client threads")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (with more than 1, uvicorn's shared socket leaves "
        "TCP_NODELAY off, which adds ~40 ms delayed-ACK stalls to small responses)",
    )
    parser.add_argument("--elue-dir", type=Path, default=REPO_ROOT.parent / "shared/data/elue")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    paths = [
        "/api/v1/leaderboard",
        "/api/v1/leaderboard?track=55M",
        "/api/v1/tasks/SST-2/leaderboard",
        "/api/v1/leaderboard?format=csv",
        IDENTITY + "/api/v1/leaderboard?format=csv",
        "/api/v1/tasks/SST-2/leaderboard?format=csv",
        # coverage=any: the default (all) lists only entries with a point on every task, fewer
        # than half of them here, and a page past its end never changes
        f"/api/v1/leaderboard?offset={args.submissions // 2}&limit=50&coverage=any",
        "/api/v1/leaderboard?q=model-123",
        f"/api/v1/tasks/SST-2/leaderboard?offset={args.submissions // 4}&limit=100",
    ]
    with _database(args.db) as url:
        t0 = time.perf_counter()
        migrate.upgrade(url)
        counts = populate(url, args.elue_dir, args.submissions, args.seed)
        print(
            f"database: {counts['tasks']} tasks, {counts['submissions']:,} submissions, "
            f"{counts['results']:,} results; built in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        with _server(url, args.workers) as base:
            timings = measure(base, url, paths, args.requests, args.concurrency, args.workers)
    print(
        f"\n{args.db}; uvicorn workers: {args.workers}; warm: {args.requests} requests per "
        "endpoint from "
        f"{args.concurrency} threads over loopback; times in ms\n"
    )
    header = (
        f"{'endpoint':<56} {'body':>9} {'cold':>8} {'after private':>14} {'after write':>12} "
        f"{'fresh (s)':>9} {'p50':>7} {'p95':>7} {'req/s':>7}"
    )
    print(header)
    print("-" * len(header))
    for path, t in timings.items():
        size = f"{t.bytes / 1024:,.0f} KiB"
        print(
            f"{path:<56} {size:>9} {t.cold_ms:>8.1f} {t.after_private_ms:>14.1f} "
            f"{t.after_write_ms:>12.1f} {t.fresh_after_s:>9.2f} "
            f"{t.p50_ms:>7.1f} {t.p95_ms:>7.1f} {t.rps:>7.1f}"
        )
    worst = max(t.p95_ms for t in timings.values())
    print(f"\nwarm p95 worst: {worst:.1f} ms (target < 50 ms)")
    print(
        f"after a private write, worst: {max(t.after_private_ms for t in timings.values()):.1f} "
        f"ms; after a public write, worst: {max(t.after_write_ms for t in timings.values()):.1f} "
        "ms (target < 200 ms); "
        f"fresh after a public write, worst: {max(t.fresh_after_s for t in timings.values()):.1f} s"
    )


if __name__ == "__main__":
    main()

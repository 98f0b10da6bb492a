"""Benchmark: the server-rendered pages with many submissions (numbers printed only).

    .venv/bin/python -m bench.bench_pages --submissions 100000 [--db postgresql|sqlite]
        [--requests 200] [--concurrency 2] [--elue-dir ../shared/data/elue] [--seed 0]

Builds the same database as `bench.bench_leaderboard` (its `populate`: the ELUE tasks,
`--submissions` bulk-inserted submissions with their points, a baseline on every task), serves
the app with uvicorn on a loopback port, and prints per page:

- cold: the first request after the server started (leaderboards computed and cached),
- after private write: the first request once a private queued submission moved on (the board
  version does not move: served from the cache),
- after write: the first request once a listed result changed (the board version moved: a
  board quick to make is recomputed inline, a slow one served stale while it is recomputed in
  the background), and fresh after: seconds until the server had no board left to refresh
  (its `/metrics`),
- warm p50 / p95 over `--requests` requests from `--concurrency` threads (loopback round trip,
  which is the server's time plus well under a millisecond),
- page weight: the HTML, plus every script, stylesheet and icon it loads, as sent and as gzip
  (our assets are sent uncompressed apart from the Plotly bundle; HTML compression is left to a
  proxy), and the task plots' JSON (default: fronts + top entries; `?all=1`: everyone).
"""

from __future__ import annotations

import argparse
import gzip
import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from bench.bench_leaderboard import (
    IDENTITY,
    _database,
    _request,
    _server,
    _touch_private,
    _touch_result,
    populate,
    settle,
)
from core.db import migrate
from core.db.session import make_engine, transaction
from core.models import Result, Submission, SubmissionState, Visibility
from core.settings import REPO_ROOT

ASSET = re.compile(r'<(?:script[^>]*\bsrc|link[^>]*\bhref)="(/[^"]+)"')


@dataclass(frozen=True, slots=True)
class PageTiming:
    cold_ms: float
    after_private_ms: float | None
    after_write_ms: float | None
    fresh_after_s: float | None
    p50_ms: float
    p95_ms: float
    status: int


@dataclass(frozen=True, slots=True)
class Weight:
    html: int
    html_gzip: int
    assets: int  # bytes as sent (the Plotly bundle gzip-encoded)
    assets_raw: int  # bytes after decoding
    count: int


def _time(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    """ms to the body's last byte as sent (gzip not decoded: the client's work), response."""
    url, headers = _request(path)  # httpx asks for gzip; `IDENTITY` + path for the raw bytes
    start = time.perf_counter()
    with client.stream("GET", url, headers=headers) as response:
        for _ in response.iter_raw():
            pass
    return (time.perf_counter() - start) * 1000, response


def _concurrent(base: str, path: str, n: int, concurrency: int) -> list[float]:
    """Latencies of `n` requests from `concurrency` threads (each its own keep-alive client)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def run(count: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            mine = []
            for _ in range(count):
                ms, response = _time(client, path)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status_code}")
                mine.append(ms)
        with lock:
            latencies.extend(mine)

    shares = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(run, c) for c in shares if c]:
            future.result()
    return latencies


def _weight(client: httpx.Client, path: str) -> Weight:
    page = client.get(path, headers={"Accept-Encoding": "identity"})
    html = page.content
    sent = raw = count = 0
    for asset in sorted(set(ASSET.findall(page.text))):
        with client.stream("GET", asset, headers={"Accept-Encoding": "gzip"}) as response:
            body = b"".join(response.iter_raw())
            encoded = response.headers.get("content-encoding") == "gzip"
        sent += len(body)
        raw += len(gzip.decompress(body)) if encoded else len(body)
        count += 1
    return Weight(len(html), len(gzip.compress(html)), sent, raw, count)


def _sample_submission(url: str) -> int:
    """A listed submission with points (the submission page of an ordinary entry)."""
    engine = make_engine(url)
    with transaction(engine) as session:
        sid = session.scalar(
            select(Submission.id)
            .join(Result, Result.submission_id == Submission.id)
            .where(
                Submission.state == SubmissionState.DONE,
                Submission.visibility == Visibility.PUBLIC,
            )
            .order_by(Submission.id)
            .limit(1)
        )
    engine.dispose()
    assert sid is not None
    return sid


def measure(
    base: str, url: str, paths: list[str], n: int, concurrency: int, write_paths: set[str]
) -> dict[str, PageTiming]:
    with httpx.Client(base_url=base, timeout=120) as client:
        cold = {p: _time(client, p) for p in paths}
    for path in paths:
        _concurrent(base, path, 4 * concurrency, concurrency)  # warm every thread's path
    out: dict[str, PageTiming] = {}
    warm = {path: _concurrent(base, path, n, concurrency) for path in paths}
    after: dict[str, float] = {}
    fresh: dict[str, float] = {}
    after_private: dict[str, float] = {}
    for step, path in enumerate(paths):
        if path not in write_paths:
            continue
        settle(base, path)  # the previous page's write may still be refreshing this one
        with httpx.Client(base_url=base, timeout=120) as client:
            _time(client, path)
            _touch_private(url, step)
            after_private[path] = _time(client, path)[0]
        _touch_result(url, 0.01)
        written = time.perf_counter()
        with httpx.Client(base_url=base, timeout=120) as client:
            after[path] = _time(client, path)[0]
        # A page need not change (a track without the baseline): fresh is when the refresh
        # that first request started is done.
        settle(base, path)
        fresh[path] = time.perf_counter() - written
    for path in paths:
        q = statistics.quantiles(warm[path], n=100, method="inclusive")
        out[path] = PageTiming(
            cold[path][0],
            after_private.get(path),
            after.get(path),
            fresh.get(path),
            q[49],
            q[94],
            cold[path][1].status_code,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--requests", type=int, default=200, help="warm requests per page")
    parser.add_argument("--concurrency", type=int, default=2, help="client threads")
    parser.add_argument("--elue-dir", default=str(REPO_ROOT.parent / "shared/data/elue"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with _database(args.db) as url:
        t0 = time.perf_counter()
        migrate.upgrade(url)
        counts = populate(url, Path(args.elue_dir), args.submissions, args.seed)
        print(
            f"database: {counts['tasks']} tasks, {counts['submissions']:,} submissions, "
            f"{counts['results']:,} results; built in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        sid = _sample_submission(url)
        paths = [
            "/",
            "/?track=55M",
            "/?sort=task:SNLI&dir=desc",
            "/?q=model-12&min_params=10&max_params=100",
            "/?q=model-4321",
            "/?min_params=50&max_params=60&sort=name",
            "/?page=50",
            "/tasks/SST-2",
            "/tasks/SNLI?page=20",
            "/tasks/SST-2/plot.json",
            "/tasks/SST-2/plot.json?all=1",
            IDENTITY + "/tasks/SST-2/plot.json?all=1",
            f"/submissions/{sid}",
            f"/api/v1/submissions/{sid}",
            "/about",
        ]
        writes = {
            "/",
            "/?track=55M",
            "/tasks/SST-2",
            "/tasks/SST-2/plot.json?all=1",
            "/?q=model-4321",
        }
        with _server(url, 1) as base:
            timings = measure(base, url, paths, args.requests, args.concurrency, writes)
            with httpx.Client(base_url=base, timeout=120) as client:
                weights = {
                    p: _weight(client, p)
                    for p in ("/", "/tasks/SST-2", f"/submissions/{sid}", "/about")
                }
                plot = {
                    f"{p} ({coding})": int(
                        client.get(p, headers={"Accept-Encoding": coding}).headers["content-length"]
                    )
                    for p in ("/tasks/SST-2/plot.json", "/tasks/SST-2/plot.json?all=1")
                    for coding in ("identity", "gzip")
                }
    print(
        f"\n{args.db}; warm: {args.requests} requests per page from {args.concurrency} threads over "
        "loopback, one uvicorn worker; times in ms\n"
    )
    header = (
        f"{'page':<44} {'status':>6} {'cold':>8} {'after private':>14} {'after write':>12} "
        f"{'fresh (s)':>9} {'p50':>7} {'p95':>7}"
    )
    print(header)
    print("-" * len(header))
    for path, t in timings.items():
        after = f"{t.after_write_ms:.1f}" if t.after_write_ms is not None else "-"
        private = f"{t.after_private_ms:.1f}" if t.after_private_ms is not None else "-"
        fresh_s = f"{t.fresh_after_s:.2f}" if t.fresh_after_s is not None else "-"
        print(
            f"{path:<44} {t.status:>6} {t.cold_ms:>8.1f} {private:>14} {after:>12} {fresh_s:>9} "
            f"{t.p50_ms:>7.1f} {t.p95_ms:>7.1f}"
        )
    worst = max(t.p95_ms for p, t in timings.items() if p in ("/", "/tasks/SST-2"))
    print(f"\nwarm p95, home and task page: {worst:.1f} ms (target < 100 ms)")
    print(
        "\npage weight (KiB): HTML as sent / gzip; assets (scripts, styles, icon) as sent / decoded"
    )
    for path, w in weights.items():
        print(
            f"{path:<28} HTML {w.html / 1024:7.1f} / {w.html_gzip / 1024:6.1f}   "
            f"{w.count} assets {w.assets / 1024:7.1f} / {w.assets_raw / 1024:7.1f}   "
            f"first visit {(w.html + w.assets) / 1024:7.1f}"
        )
    for path, size in plot.items():
        print(f"plot data {path:<45} {size / 1024:7.1f} KiB as sent")


if __name__ == "__main__":
    main()

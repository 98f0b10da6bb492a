"""Benchmark: upload a ~50 MB prediction zip to a real server; time and server memory growth.

    .venv/bin/python -m bench.bench_upload [--points 13] [--deflate] [--endpoint submissions]
                                           [--weights-mib 1024]

Builds a migrated SQLite database with the SNLI task in a temporary folder, starts uvicorn on a
free loopback port (broker unreachable on purpose: the submission stays queued), and writes a zip
of SNLI prediction files in ELUE's `modules` form (every sample goes through 12 layers and exits,
about 4 MB per file), one per point, stored uncompressed unless --deflate. After one small warm-up
submission (imports, caches), it streams the zip from disk with httpx while sampling the server's
VmRSS from /proc/<pid>/status every 5 ms, and prints the wall time, the request size, and the
peak RSS growth over the RSS just before the upload. `--weights-mib N` sends a safetensors
weights file of N MiB with it (one float32 tensor, written to disk in chunks). Prints numbers;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import struct
import subprocess
import tempfile
import threading
import time
import zipfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from core.db import migrate
from core.db.session import make_engine, transaction
from core.settings import REPO_ROOT
from core.tasks import service
from core.users import service as user_service
from tests.processes import free_port, uvicorn_command

LABELS = ("0", "1", "2")  # SNLI labels as the task stores them
MODEL = REPO_ROOT / "tests" / "models" / "tiny_static.py"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Sampler(threading.Thread):
    """Samples a process's resident set size until stopped; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _rss_kib(self.pid))
            time.sleep(self.every)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def snli_modules_file(n_rows: int, seed: int) -> bytes:
    """A valid SNLI prediction file with a 12-layer module path per sample."""
    rng = random.Random(seed)
    lines = ["index\tprediction\tmodules"]
    for i in range(n_rows):
        length = rng.randint(12, 60)
        path = "; ".join(
            [f"({length}),emb"]
            + [f"({length},768),layer_{k}; (768),exit_{k}" for k in range(1, 13)]
        )
        lines.append(f"{i}\t{rng.choice(LABELS)}\t{path}")
    return ("\n".join(lines) + "\n").encode()


def write_weights(path: Path, mib: int) -> None:
    """A safetensors file of `mib` MiB of data (one float32 tensor), written in 1 MiB chunks."""
    n = mib * 1024 * 1024
    header = json.dumps({"w": {"dtype": "F32", "shape": [n // 4], "data_offsets": [0, n]}})
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(header)) + header.encode())
        chunk = bytes(range(256)) * 4096
        for _ in range(mib):
            out.write(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elue-dir", type=Path, default=REPO_ROOT.parent / "shared/data/elue")
    parser.add_argument("--points", type=int, default=13, help="prediction files in the zip")
    parser.add_argument("--deflate", action="store_true", help="compress the zip entries")
    parser.add_argument("--endpoint", choices=["submissions", "validate"], default="submissions")
    parser.add_argument("--weights-mib", type=int, default=0, help="also send weights of N MiB")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "var"
        data.mkdir()
        url = f"sqlite:///{data / 'paretoboard.db'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        with transaction(engine) as session:
            for task in service.read_task_folders(args.elue_dir / "SNLI"):
                service.import_task(session, task)
            n_rows = service.get_task(session, "SNLI").test_size
            user = user_service.create_user(
                session, email="bench@example.org", display_name="Bench", password="x" * 12
            )
            _, token = user_service.create_token(session, user=user, name="bench")
        engine.dispose()

        archive = tmp / "predictions.zip"
        method = zipfile.ZIP_DEFLATED if args.deflate else zipfile.ZIP_STORED
        uncompressed = 0
        with zipfile.ZipFile(archive, "w", compression=method) as zf:
            for p in range(args.points):
                body = snli_modules_file(n_rows, seed=p)
                uncompressed += len(body)
                zf.writestr(f"SNLI.p{p}.tsv", body)
        weights = tmp / "weights.safetensors"
        if args.weights_mib:
            write_weights(weights, args.weights_mib)
        request_size = archive.stat().st_size + MODEL.stat().st_size
        request_size += weights.stat().st_size if args.weights_mib else 0
        warm = tmp / "SNLI.tsv"
        warm.write_bytes(snli_modules_file(n_rows, seed=99))

        env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
        env.update(
            PARETOBOARD_STORAGE__DATA_DIR=str(data),
            PARETOBOARD_BROKER__URL="redis://127.0.0.1:1/0",
            PARETOBOARD_BROKER__RESULT_BACKEND="redis://127.0.0.1:1/1",
        )
        port = free_port()
        server = subprocess.Popen(
            uvicorn_command(port, "--log-level", "warning"),
            env=env,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start")
            with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
                path = "/api/v1/submissions" + ("/validate" if args.endpoint == "validate" else "")
                with MODEL.open("rb") as m, warm.open("rb") as w:
                    r = client.post(
                        path,
                        data={"name": "warm-up"},
                        files=[("model", ("model.py", m)), ("predictions", ("SNLI.tsv", w))],
                    )
                    assert r.status_code in (200, 202), r.text
                time.sleep(0.5)
                before = _rss_kib(server.pid)
                sampler = Sampler(server.pid)
                sampler.start()
                start = time.perf_counter()
                with MODEL.open("rb") as m, archive.open("rb") as z, ExitStack() as stack:
                    parts = [("model", ("model.py", m)), ("predictions", ("preds.zip", z))]
                    if args.weights_mib:
                        wf = stack.enter_context(weights.open("rb"))
                        parts.append(("weights", ("weights.safetensors", wf)))
                    r = client.post(path, data={"name": "bench"}, files=parts)
                elapsed = time.perf_counter() - start
                peak = sampler.stop()
                after = _rss_kib(server.pid)
            assert r.status_code in (200, 202), r.text
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)

    kind = "deflated" if args.deflate else "stored"
    print(f"endpoint:        POST {path} -> {r.status_code}")
    print(
        f"zip:             {args.points} SNLI files in ELUE modules form ({kind}), "
        f"{uncompressed / 1e6:.1f} MB of predictions; request {request_size / 1e6:.1f} MB"
    )
    if args.weights_mib:
        print(f"weights:         {args.weights_mib} MiB safetensors (one float32 tensor)")
    print(f"upload + checks: {elapsed:.2f} s ({request_size / 1e6 / elapsed:.1f} MB/s)")
    print(
        f"server RSS:      {before / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB, "
        f"{after / 1024:.1f} MiB after"
    )
    print(f"peak growth:     {(peak - before) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()

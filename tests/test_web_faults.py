"""Web faults (issue 15): one form parser with one set of limits, a full data folder (507, nothing
kept), and what killed uploads leave (cleaned at start and by `paretoboard reconcile`).

The drills with workers (the web process killed mid-upload, PostgreSQL cut under traffic) are in
tests/test_fault_drills.py (slow).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.db.session import engine_for, make_engine, transaction
from core.leftovers import OWNED_MARK, clean_leftovers, clean_staging, staging_folder
from core.settings import REPO_ROOT
from core.storage import LocalBlobStore
from core.users import service as users
from server import enqueue
from tests.api_helpers import PASSWORD, Api
from tests.processes import free_port, stop, uvicorn_command, wait_until_up
from tests.submission_helpers import TINY_MODEL, footprint, predictions_bytes

pytest_plugins = ["tests.api_helpers"]
MIB = 1024 * 1024
SST2 = predictions_bytes("SST-2")


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Submissions sent to the queue (no broker needed)."""
    jobs: list[int] = []

    def send(settings: Any, submission_id: int, job_id: str) -> bool:
        jobs.append(submission_id)
        return True

    monkeypatch.setattr(enqueue, "send_score", send)
    return jobs


# ------------------------------------------------------------------ one parser, bounded memory


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _post_streaming(
    port: int, path: str, headers: dict[str, str], chunks: Iterator[bytes]
) -> tuple[int, bytes, int]:
    """POST a chunked body while reading the answer: (status, body, bytes sent). The server may
    answer (and close) before the body ends; sending stops then."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    answer = bytearray()
    answered = threading.Event()

    def read() -> None:
        try:
            while data := sock.recv(65536):
                answer.extend(data)
                if b"\r\n\r\n" in answer:
                    answered.set()
        except OSError:
            pass
        answered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = 0
    try:
        sock.sendall(head.encode())
        for chunk in chunks:
            if answered.is_set():
                break
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        else:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed
    reader.join(timeout=60)
    sock.close()
    status_line, _, rest = bytes(answer).partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), bytes(answer[:200])
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2], sent


def _parts(boundary: str, csrf: str, files: int, each: int) -> Iterator[bytes]:
    """A form with the CSRF field first, then `files` prediction parts of `each` bytes."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n'
    ).encode()
    block = b"0\tpositive\n" * (MIB // 11)
    for i in range(files):
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="predictions"; '
            f'filename="SST-2.{i}.tsv"\r\nContent-Type: text/tab-separated-values\r\n\r\n'
        ).encode()
        left = each
        while left > 0:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


@pytest.fixture(scope="module")
def web(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    """uvicorn on a copy of the seeded SQLite database."""
    template: Path = request.getfixturevalue("sqlite_seeded_template")
    tmp = tmp_path_factory.mktemp("web")
    db = tmp / "paretoboard.db"
    shutil.copyfile(template, db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env.update(
        PARETOBOARD_MODE="test",
        PARETOBOARD_DB__URL=f"sqlite:///{db}",
        PARETOBOARD_STORAGE__DATA_DIR=str(tmp / "var"),
    )
    log = tmp / "uvicorn.log"
    port = free_port()
    proc = subprocess.Popen(
        uvicorn_command(port, "--log-level", "warning"),
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", [proc], log)
        yield f"sqlite:///{db}", port, proc
    finally:
        stop(proc)


@pytest.mark.slow  # 200-500 MB through uvicorn: about a minute each on 2 busy cores
@pytest.mark.parametrize(
    ("files", "each", "status"),
    [(500, MIB, 422), (1, 500 * MIB, 413)],
    ids=["500-parts-of-1MiB", "one-500MiB-part"],
)
def test_cookie_upload_refused_by_the_upload_parser_in_bounded_memory(
    web: tuple[str, int, subprocess.Popen[bytes]], files: int, each: int, status: int
) -> None:
    """A browser's upload (session cookie, CSRF token as a form field) is read by the upload
    parser, not Starlette's defaults (1 MiB of each of 1,000 files in memory): too many parts,
    or parts past the request limit, are refused while the body streams, and the web process
    grows by far less than the body (500 MB sent: under 100 MB of growth)."""
    url, port, proc = web
    email = f"mem-{uuid.uuid4().hex[:8]}@example.org"
    with transaction(make_engine(url)) as session:
        users.create_user(session, email=email, display_name="Mem", password=PASSWORD)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    made = client.post("/api/v1/session", json={"email": email, "password": PASSWORD})
    assert made.status_code == 200, made.text
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    before = _peak_rss(proc.pid)
    boundary = uuid.uuid4().hex
    code, body, sent = _post_streaming(
        port,
        "/api/v1/submissions",
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": cookie},
        _parts(boundary, made.json()["csrf_token"], files, each),
    )
    grown = _peak_rss(proc.pid) - before
    print(
        f"\nMEASURE {files} x {each // MIB} MiB cookie upload: {code} after {sent / MIB:.0f} MiB "
        f"sent, peak RSS +{grown / MIB:.1f} MiB"
    )
    assert code == status, body[:500]
    assert b"Too many files" in body if status == 422 else b"larger than the limit" in body
    assert sent < 300 * MIB  # refused while streaming, not after the whole body
    assert grown < 100 * MIB, f"the web process grew by {grown / MIB:.0f} MiB"
    assert client.get("/healthz").status_code == 200
    client.close()


def test_cookie_upload_parsed_with_the_upload_limits(seeded_api: Api) -> None:
    """The cheap check of the same: the CSRF check of a browser's upload reads the form with the
    upload parser's limits (Starlette's defaults would take 1,000 files)."""
    alice = seeded_api.user()
    browser = seeded_api.login(alice)
    csrf = browser.headers.pop("X-CSRF-Token")
    limit = seeded_api.settings.limits.max_prediction_files
    files = [("predictions", (f"SST-2.{i}.tsv", b"x")) for i in range(limit + 10)]
    refused = browser.post("/api/v1/submissions", data={"csrf_token": csrf}, files=files)
    assert refused.status_code == 422, refused.text
    assert "Too many files" in refused.json()["error"]["details"][0]["problem"]
    big = browser.post(
        "/submit", data={"csrf_token": csrf, "description": "x" * (70 * 1024)}, files=files[:1]
    )
    assert big.status_code == 422, big.text
    assert "Part exceeded maximum size of 64KB" in big.text
    boundary = "b0undary"
    long_header = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n'
        f"X-Padding: {'x' * 100_000}\r\n\r\nname\r\n--{boundary}--\r\n"
    )
    padded = browser.post(
        "/api/v1/submissions",
        headers={"X-CSRF-Token": csrf, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=long_header.encode(),
    )
    assert padded.status_code == 422, padded.text  # python-multipart bounds part headers
    assert padded.json()["error"]["message"] == "The upload could not be read"


def test_page_forms_take_no_files_and_few_fields(seeded_api: Api) -> None:
    """Forms outside the upload paths go through the same parser with tighter limits."""
    files = {"attachment": ("a.txt", b"x" * 1000)}
    refused = seeded_api.client.post("/login", data={"email": "a@b.c"}, files=files)
    assert refused.status_code == 422, refused.text
    assert "Too many files" in refused.text
    many = {f"f{i}": "x" for i in range(200)}
    assert seeded_api.client.post("/login", data=many).status_code == 422


# --------------------------------------------------------------------------- full data folder


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs for the data folder (root only; else skipped)."""
    mount = tmp_path / "var"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(path: Path, leave: int) -> Path:
    """A file taking all of the folder's free space but `leave` bytes."""
    filler = path / "filler"
    size = _free(path) - leave
    with filler.open("wb") as out:
        while size > 0:
            size -= out.write(b"\0" * min(size, MIB))
    return filler


def _pages(n: int) -> int:
    return -(-n // 4096) * 4096


@pytest.mark.parametrize("where", ["staging", "blobs"])
def test_full_data_folder_gives_507_and_keeps_nothing(
    seeded_api_db: str, small_disk: Path, sent: list[int], where: str
) -> None:
    """The data folder fills up while the upload is staged, or while its blobs are stored: 507
    with a clear message; no staging folder, no blob (the ones already stored are removed), no
    row. With room again, the same upload is accepted."""
    api = Api.start(seeded_api_db, small_disk)
    try:
        alice = api.user()
        model = TINY_MODEL.read_bytes()
        files = [("model", ("model.py", model)), ("predictions", ("SST-2.tsv", SST2))]
        (small_disk / "uploads").mkdir()
        (small_disk / "staging").mkdir()
        with api.db() as session:
            before = footprint(session, small_disk)
        staged = _pages(len(model)) + _pages(len(SST2))
        # "blobs": room for the staged copies and the model's blob, not the predictions' blob
        leave = 4096 if where == "staging" else staged + _pages(len(model)) + 8192
        filler = _fill(small_disk, leave)
        answer = api.client.post(
            "/api/v1/submissions", headers=alice.headers, data={"name": "full"}, files=files
        )
        assert answer.status_code == 507, answer.text
        error = answer.json()["error"]
        assert error["code"] == "insufficient_storage"
        assert "storage is full" in error["message"]
        assert "nothing was stored" in error["message"]
        with api.db() as session:
            assert footprint(session, small_disk) == before
        if where == "staging":  # the no-JavaScript form: the page again, with the message
            browser = api.login(alice)
            csrf = browser.headers.pop("X-CSRF-Token")
            page = browser.post(
                "/submit",
                headers={"Accept": "text/html"},
                data={"name": "full", "csrf_token": csrf},
                files=files,
            )
            assert page.status_code == 507, page.text
            assert "storage is full" in page.text
        with api.db() as session:
            assert footprint(session, small_disk) == before
        assert not list((small_disk / "uploads").glob(".incoming-*"))
        assert list((small_disk / "staging").iterdir()) == []
        assert sent == []
        filler.unlink()
        again = api.client.post(
            "/api/v1/submissions", headers=alice.headers, data={"name": "full"}, files=files
        )
        assert again.status_code == 202, again.text
        assert sent == [again.json()["id"]]
    finally:
        api.close()


# ------------------------------------------------------------------------------- leftovers


def test_leftovers_of_killed_uploads_are_cleaned(seeded_api: Api) -> None:
    """A staging folder whose request died and a blob no submission uses (past the grace
    period) are removed by the clean-up; a staging folder in use, a fresh orphan and a blob a
    submission uses are kept."""
    data = seeded_api.settings.storage.data_dir
    staging = data / "staging"
    store = LocalBlobStore(seeded_api.settings.storage.uploads_dir)
    alice = seeded_api.user()
    made = seeded_api.client.post(
        "/api/v1/submissions",
        headers=alice.headers,
        data={"name": "kept"},
        files=[("model", ("m.py", TINY_MODEL.read_bytes())), ("predictions", ("SST-2.tsv", SST2))],
    )
    assert made.status_code == 202, made.text
    used = sorted(p for p in store.root.rglob("*") if p.is_file() and len(p.name) == 64)
    dead = staging / "upload-dead"
    dead.mkdir(parents=True)
    (dead / OWNED_MARK).touch()
    (dead / "0").write_bytes(b"x" * 1000)  # what a process killed mid-upload leaves
    old, _ = store.put_bytes(b"an orphan from a killed upload")
    fresh, _ = store.put_bytes(b"an upload in flight, not committed yet")
    long_ago = time.time() - 7200
    for path in (store.path(old), *used):
        os.utime(path, (long_ago, long_ago))
    with staging_folder(staging) as live:
        cleaned = clean_leftovers(
            data,
            engine_for(seeded_api.settings.database_url),
            store,
            grace_seconds=3600,
        )
        assert live.is_dir()  # its request holds the lock
    assert cleaned.staging == ["upload-dead"]
    assert cleaned.blobs == [old]
    assert not dead.exists()
    assert not store.exists(old)
    assert store.exists(fresh)
    assert all(p.is_file() for p in used)
    assert clean_staging(staging).staging == []  # nothing more to do


@pytest.mark.slow  # a subprocess of the CLI (seconds of imports)
def test_reconcile_command_removes_and_lists_leftovers(
    sqlite_seeded_template: Path, tmp_path: Path
) -> None:
    db = tmp_path / "paretoboard.db"
    shutil.copyfile(sqlite_seeded_template, db)
    data = tmp_path / "var"
    dead = data / "staging" / "upload-killed"
    dead.mkdir(parents=True)
    (dead / OWNED_MARK).touch()
    store = LocalBlobStore(data / "uploads")
    orphan, _ = store.put_bytes(b"never committed")
    os.utime(store.path(orphan), (time.time() - 600, time.time() - 600))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    redis_url = os.environ.get("PARETOBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    env.update(
        PARETOBOARD_DB__URL=f"sqlite:///{db}",
        PARETOBOARD_STORAGE__DATA_DIR=str(data),
        PARETOBOARD_BROKER__URL=f"{redis_url}/15",
    )
    pb = Path(sys.executable).with_name("paretoboard")
    done = subprocess.run(
        [str(pb), "reconcile", "--orphans-older-than", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "removed staging folder upload-killed" in done.stdout
    assert f"removed orphan blob {orphan}" in done.stdout
    assert "leftovers: 1 staging folder(s), 1 orphan blob(s)" in done.stdout
    assert not dead.exists()
    assert not store.exists(orphan)


def test_uploads_hold_no_database_connection_while_the_body_streams(
    seeded_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request's pooled connection (used to authenticate) is given back before the body is
    read, by the token path and by the browser's CSRF check: 50 concurrent uploads must not
    hold 50 connections while their bytes arrive (the pool ran dry in bench/bench_load.py)."""
    from web import auth
    from web.api import submissions

    pool = engine_for(seeded_api.settings.database_url).pool
    seen: list[tuple[str, int]] = []
    real_staged, real_read = submissions.staged_upload, auth.read_form

    def staged(request: Any, settings: Any) -> Any:
        seen.append(("upload", pool.checkedout()))  # type: ignore[attr-defined]
        return real_staged(request, settings)

    async def read_form(request: Any) -> Any:
        seen.append(("csrf", pool.checkedout()))  # type: ignore[attr-defined]
        return await real_read(request)

    monkeypatch.setattr(submissions, "staged_upload", staged)
    monkeypatch.setattr(auth, "read_form", read_form)
    alice = seeded_api.user()
    files = {"model": ("model.py", TINY_MODEL.read_bytes()), "predictions": ("SST-2.tsv", SST2)}
    made = seeded_api.client.post(
        "/api/v1/submissions", headers=alice.headers, data={"name": "held"}, files=files
    )
    assert made.status_code == 202, made.text
    browser = seeded_api.login(alice)
    csrf = browser.headers.pop("X-CSRF-Token")
    checked = browser.post(
        "/api/v1/submissions/validate", data={"csrf_token": csrf, "name": "held2"}, files=files
    )
    assert checked.status_code == 200, checked.text
    assert [kind for kind, _ in seen] == ["upload", "csrf", "upload"]
    assert seen == [("upload", 0), ("csrf", 0), ("upload", 0)]

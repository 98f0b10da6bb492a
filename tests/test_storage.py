"""The blob store behind its one interface, on the local disk and on a real S3-compatible server
(moto's, from PyPI; or PARETOBOARD_TEST_S3_URL), and the locks that order its writers: advisory
locks on the real PostgreSQL, file locks beside SQLite."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.db.session import make_engine, transaction
from core.leftovers import clean_orphan_blobs
from core.locks import LockName, lock_file, transaction_lock, try_lock
from core.models import FileRole, SubmissionFile, SubmissionState
from core.settings import Settings, StorageBackend, StorageSettings
from core.storage import (
    PARTIAL_PREFIX,
    BlobNotFoundError,
    BlobStore,
    LocalBlobStore,
    blob_store,
)
from core.storage_s3 import S3BlobStore
from core.submissions.blobs import collect_blobs
from tests.factories import make_submission

STORES = ["local", "s3"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        made: BlobStore = LocalBlobStore(tmp_path / "uploads")
    else:
        fields = request.getfixturevalue("s3_storage")
        made = blob_store(
            Settings(storage=StorageSettings.model_validate({"data_dir": tmp_path, **fields}))
        )
        assert isinstance(made, S3BlobStore)
    with made:
        yield made


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_and_read_back(store: BlobStore, tmp_path: Path) -> None:
    data = b"index\tprediction\n0\t1\n" * 1000
    source = tmp_path / "preds.tsv"
    source.write_bytes(data)
    assert store.put_file(source) == (_sha(data), len(data))
    assert store.put_stream(io.BytesIO(b"other")) == (_sha(b"other"), 5)
    assert store.put_bytes(b"") == (_sha(b""), 0)
    sha = _sha(data)
    assert store.written == [sha, _sha(b"other"), _sha(b"")]
    assert store.exists(sha)
    assert store.size(sha) == len(data)
    with store.open(sha) as f:
        assert f.read() == data
    assert store.read_bytes(_sha(b"")) == b""
    local = store.local_path(sha)
    assert local.read_bytes() == data
    store.copy_to(sha, tmp_path / "copy")
    store.link_or_copy_to(sha, tmp_path / "link")
    assert (tmp_path / "copy").read_bytes() == (tmp_path / "link").read_bytes() == data
    assert [b.name for b in store.list_blobs()] == sorted([sha, _sha(b"other"), _sha(b"")])
    assert {b.name: b.size for b in store.list_blobs()}[sha] == len(data)


def test_same_bytes_are_stored_once_and_renewed(store: BlobStore) -> None:
    sha, _ = store.put_bytes(b"shared by two submissions")
    first = store.modified(sha)
    assert first is not None
    if isinstance(store, LocalBlobStore):  # S3's LastModified has a one-second resolution
        os.utime(store.path(sha), (first - 600, first - 600))
        first -= 600
    else:
        time.sleep(1.1)
    assert store.put_bytes(b"shared by two submissions")[0] == sha
    renewed = store.modified(sha)
    assert renewed is not None
    assert renewed > first
    assert [b.name for b in store.list_blobs()] == [sha]
    assert store.read_bytes(sha) == b"shared by two submissions"


def test_missing_and_malformed(store: BlobStore, tmp_path: Path) -> None:
    absent = _sha(b"never stored")
    assert not store.exists(absent)
    assert store.modified(absent) is None
    for read in (store.open, store.local_path, store.size, store.read_bytes):
        with pytest.raises(BlobNotFoundError):
            read(absent)
    with pytest.raises(BlobNotFoundError):
        store.copy_to(absent, tmp_path / "x")
    assert store.delete(absent) is False
    with pytest.raises(ValueError, match="sha256"):
        store.exists("../../etc/passwd")
    sha, _ = store.put_bytes(b"x")
    assert store.delete(sha) is True
    assert not store.exists(sha)
    assert list(store.list_blobs()) == []


def test_derived_data_is_kept_and_dropped_with_its_blob(store: BlobStore) -> None:
    """What trusted code computed from a blob (its parsed form) lives beside it in either
    store, is replaced in place, and goes when the blob's derived data is dropped."""
    sha, _ = store.put_bytes(b"predictions")
    other, _ = store.put_bytes(b"other predictions")
    assert store.read_derived(f"{sha}.parsed-v1") is None
    store.put_derived(f"{sha}.parsed-v1", b"first")
    store.put_derived(f"{sha}.parsed-v1", b"second")
    store.put_derived(f"{sha}.tokens-abc", b"tokens")
    store.put_derived(f"{other}.parsed-v1", b"kept")
    assert store.read_derived(f"{sha}.parsed-v1") == b"second"
    assert {b.name for b in store.list_blobs()} == {sha, other}  # derived data is no blob
    store.drop_derived(sha)
    assert store.read_derived(f"{sha}.parsed-v1") is None
    assert store.read_derived(f"{sha}.tokens-abc") is None
    assert store.read_derived(f"{other}.parsed-v1") == b"kept"
    for bad in ("../etc/passwd", f"{sha}", f"{sha}./x", "ab.parsed"):
        with pytest.raises(ValueError, match="not a derived-data key"):
            store.put_derived(bad, b"x")


def test_local_copies_go_with_the_store(s3_storage: dict[str, str], tmp_path: Path) -> None:
    settings = Settings(
        storage=StorageSettings.model_validate({"data_dir": tmp_path, **s3_storage})
    )
    with blob_store(settings) as store:
        sha, _ = store.put_bytes(b"weights")
        path = store.local_path(sha)
        assert path.read_bytes() == b"weights"
        assert store.local_path(sha) == path  # downloaded once
    assert not path.exists()
    assert not (tmp_path / "uploads").exists()  # nothing on the local disk: all in the bucket


def test_half_written_blobs_are_listed_and_removed(store: BlobStore) -> None:
    if isinstance(store, S3BlobStore):  # a multipart upload a killed process never completed
        key = store.key(_sha(b"never completed"))
        store.client.create_multipart_upload(Bucket=store.bucket, Key=key)
    else:
        store.root.mkdir(parents=True)
        (store.root / f"{PARTIAL_PREFIX}abc").write_bytes(b"half")
    [partial] = store.list_partials()
    assert list(store.list_blobs()) == []
    store.delete_partial(partial.name)
    assert list(store.list_partials()) == []
    with pytest.raises(ValueError, match="half-written"):
        store.delete_partial("../../etc/passwd")


def _engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        import shutil

        db = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_templates")["empty"], db)
        return make_engine(f"sqlite:///{db}")
    return make_engine(request.getfixturevalue("pg_empty_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    made = _engine(request, tmp_path)
    yield made
    made.dispose()


def _submission_using(engine: Engine, sha: str, state: SubmissionState) -> None:
    with transaction(engine) as session:
        sub = make_submission(session, f"uses {sha[:8]}", state=state)
        session.add(
            SubmissionFile(
                submission_id=sub.id,
                role=FileRole.MODEL,
                original_name="model.py",
                sha256=sha,
                size=1,
            )
        )


def test_orphans_and_collection_on_the_object_store(
    engine: Engine, s3_storage: dict[str, str], tmp_path: Path
) -> None:
    """`paretoboard reconcile`'s orphan cleaner and the withdrawal's collection, on S3."""
    settings = Settings(
        storage=StorageSettings.model_validate({"data_dir": tmp_path, **s3_storage})
    )
    store = blob_store(settings)
    live, _ = store.put_bytes(b"a live submission's model")
    withdrawn, _ = store.put_bytes(b"a withdrawn submission's model")
    orphan, _ = store.put_bytes(b"an upload killed before its commit")
    _submission_using(engine, live, SubmissionState.DONE)
    _submission_using(engine, withdrawn, SubmissionState.WITHDRAWN)
    assert isinstance(store, S3BlobStore)

    fresh = clean_orphan_blobs(engine, store, grace_seconds=3600)
    assert not fresh  # everything is younger than the grace period
    # (made after the first clean-up: moto dates every multipart upload in 2010)
    store.client.create_multipart_upload(Bucket=store.bucket, Key=store.key(_sha(b"half")))
    later = clean_orphan_blobs(engine, store, grace_seconds=3600, now=time.time() + 7200)
    assert sorted(later.blobs[1:]) == sorted([withdrawn, orphan])
    assert later.blobs[0].startswith(store.key(_sha(b"half")))
    assert [b.name for b in store.list_blobs()] == [live]
    assert list(store.list_partials()) == []

    again, _ = store.put_bytes(b"a withdrawn submission's model")
    with transaction(engine) as session:
        assert collect_blobs(session, store, [live, again]) == [again]
    assert store.exists(live)
    assert not store.exists(again)


@pytest.mark.postgres
def test_advisory_locks_span_connections(pg_empty_url: str) -> None:
    """Two connections (as two hosts would hold): shared with shared, exclusive alone."""
    engine = make_engine(pg_empty_url)
    try:
        with Session(engine) as first, Session(engine) as second:
            with transaction_lock(first, LockName.BLOBS, shared=True):
                with transaction_lock(second, LockName.BLOBS, shared=True):
                    pass  # shared locks coexist (an upload beside another)
                second.commit()
                second.execute(text("SET LOCAL lock_timeout = '100ms'"))
                with (
                    pytest.raises(OperationalError, match="lock timeout"),
                    transaction_lock(second, LockName.BLOBS),
                ):
                    pass  # a collector waits for the upload's commit
            first.commit()  # the transaction's end releases it
            with transaction_lock(second, LockName.BLOBS):
                pass
            second.commit()

        with try_lock(engine, LockName.SEED) as taken:
            assert taken
            with try_lock(engine, LockName.SEED) as again:
                assert not again  # a second seed, on any host, does nothing
        with try_lock(engine, LockName.SEED) as after:
            assert after
    finally:
        engine.dispose()


def test_local_locks_beside_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'paretoboard.db'}")
    try:
        assert lock_file(engine.url, LockName.SEED) == tmp_path / "seed.lock"
        with try_lock(engine, LockName.SEED) as taken:
            assert taken
            with try_lock(engine, LockName.SEED) as again:
                assert not again
        with try_lock(engine, LockName.SEED) as after:
            assert after
    finally:
        engine.dispose()


def test_storage_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("PARETOBOARD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PARETOBOARD_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("PARETOBOARD_STORAGE__S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("PARETOBOARD_STORAGE__S3_BUCKET", "board")
    monkeypatch.setenv("PARETOBOARD_STORAGE__S3_SECRET_KEY", "s3cret")
    storage = Settings().storage
    assert storage.backend is StorageBackend.S3
    assert storage.s3_endpoint_url == "http://minio:9000"
    assert storage.s3_bucket == "board"
    assert storage.s3_secret_key is not None
    assert storage.s3_secret_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(storage)
    assert isinstance(blob_store(Settings(storage=StorageSettings())), LocalBlobStore)


def test_weights_copied_for_cost_workers(
    s3_storage: dict[str, str], tmp_path: Path, sqlite_templates: dict[str, Path]
) -> None:
    """Cost workers hold no store credentials: with S3, the score worker leaves the weights in
    its upload folder (read-only to them); unused copies go with the orphans."""
    import shutil

    from core.leftovers import clean_leftovers
    from worker.pipeline import _weights_for_cost_workers
    from worker.verification import VerifyRequest

    settings = Settings(
        storage=StorageSettings.model_validate({"data_dir": tmp_path, **s3_storage})
    )
    store = blob_store(settings)
    sha, _ = store.put_bytes(b"safetensors bytes")
    _weights_for_cost_workers(
        store, settings, VerifyRequest(weights={"SST-2": sha}, inputs={}, entries=[])
    )
    local = LocalBlobStore(settings.storage.uploads_dir)
    assert local.read_bytes(sha) == b"safetensors bytes"

    shutil.copyfile(sqlite_templates["empty"], tmp_path / "paretoboard.db")
    engine = make_engine(settings.database_url)
    try:
        cleaned = clean_leftovers(tmp_path, engine, store, grace_seconds=0)
    finally:
        engine.dispose()
    assert cleaned.blobs == [sha, sha]  # the unreferenced blob in the bucket, then its copy
    assert not local.exists(sha)
    assert not store.exists(sha)

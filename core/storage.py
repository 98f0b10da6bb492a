"""Content-addressed blob store: files live under their sha256, never under a user-supplied name.

`BlobStore` is the one interface; `LocalBlobStore` keeps blobs under a folder (the embedded
default, one host) and `core.storage_s3.S3BlobStore` in any S3-compatible object store (boto3),
so that web processes and score workers on several hosts share them. `blob_store(settings)`
builds the configured one. A store may hold local copies of blobs for callers that need a file
(`local_path`: the sandbox, the tokenizer); `close()` removes them.
"""

from __future__ import annotations

import abc
import errno
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Self

if TYPE_CHECKING:
    from core.settings import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DERIVED_KEY = re.compile(r"^([0-9a-f]{64})\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,120}$")
DERIVED = "derived"  # below the root or prefix: what trusted code computed from a blob
CHUNK = 1024 * 1024
PARTIAL_PREFIX = ".incoming-"


class BlobNotFoundError(FileNotFoundError):
    """No blob with this hash is stored."""


def check_sha(sha256: str) -> str:
    """The hash itself, or ValueError when it is not a lowercase sha256 hex digest."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


def check_derived_key(key: str) -> str:
    """The sha256 a derived-data key ("<sha256>.<name>") belongs to; ValueError otherwise."""
    match = _DERIVED_KEY.match(key)
    if match is None:
        raise ValueError(f"not a derived-data key: {key!r}")
    return match.group(1)


def is_sha(name: str) -> bool:
    return bool(_SHA256.match(name))


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob (`name` is its sha256) or a half-written one, as the cleaner lists them."""

    name: str
    size: int
    modified: float  # POSIX seconds: last stored (a re-upload of the same bytes renews it)


def hash_stream(stream: BinaryIO, out: BinaryIO | None = None) -> tuple[str, int]:
    """The sha256 and size of a stream read to its end in chunks (copied to `out` if given)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
    return digest.hexdigest(), size


class BlobStore(abc.ABC):
    """Stores bytes by content hash (deduplicated; a blob is visible only once complete)."""

    def __init__(self) -> None:
        self.written: list[str] = []  # the hashes this instance stored (new or deduplicated)

    # --- writing ---------------------------------------------------------------------------
    @abc.abstractmethod
    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Copy a stream into the store in chunks; returns (sha256, size). Storing bytes that
        are already there renews the blob's modification time (not an orphan for a while)."""

    def put_file(self, source: Path) -> tuple[str, int]:
        with source.open("rb") as f:
            return self.put_stream(f)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream(io.BytesIO(data))

    # --- reading ---------------------------------------------------------------------------
    @abc.abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abc.abstractmethod
    def size(self, sha256: str) -> int:
        """The blob's size in bytes (BlobNotFoundError when absent)."""

    @abc.abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """The blob as a stream to read and close (BlobNotFoundError when absent)."""

    @abc.abstractmethod
    def local_path(self, sha256: str) -> Path:
        """A local file holding the blob, to read only, valid until `close()` (BlobNotFoundError
        when absent)."""

    def read_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as f:
            return f.read()

    def copy_to(self, sha256: str, target: Path) -> None:
        """Write the blob to a new local file."""
        with self.open(sha256) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)

    def link_or_copy_to(self, sha256: str, target: Path) -> None:
        """Put the blob at `target` by a hard link where possible, else by a copy."""
        self.copy_to(sha256, target)

    # --- removing and listing (blob lifetime: `core.submissions.blobs`, `core.leftovers`) ---
    @abc.abstractmethod
    def delete(self, sha256: str) -> bool:
        """Remove the blob; whether it was there."""

    @abc.abstractmethod
    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every complete blob, in hash order."""

    @abc.abstractmethod
    def modified(self, sha256: str) -> float | None:
        """When the blob was last stored (None when absent)."""

    @abc.abstractmethod
    def list_partials(self) -> Iterator[BlobInfo]:
        """Blobs a killed process left half-written."""

    @abc.abstractmethod
    def delete_partial(self, name: str) -> None: ...

    # --- derived data ----------------------------------------------------------------------
    # What trusted code computed from a blob (its parsed form, token counts), stored under
    # "<sha256 of what it came from>.<what it is>" and removed with that blob. Only trusted
    # code writes these; readers still check what they read and recompute it when it is
    # missing or unreadable.
    @abc.abstractmethod
    def put_derived(self, key: str, data: bytes) -> None:
        """Store derived data under `key` (replacing any older copy; never seen half-written)."""

    @abc.abstractmethod
    def read_derived(self, key: str) -> bytes | None:
        """The derived data under `key`, None when there is none."""

    @abc.abstractmethod
    def drop_derived(self, sha256: str) -> None:
        """Remove everything derived from the blob `sha256` (call when the blob goes)."""

    # --- local copies ----------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Remove the local copies `local_path` made."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalBlobStore(BlobStore):
    """Blobs under `root` as `ab/cd/<sha256>`, written to a temporary name and then renamed."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the blob with this hash lives (it may not exist)."""
        check_sha(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=PARTIAL_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                sha, size = hash_stream(stream, out)
            target = self.path(sha)
            if target.is_file():
                os.unlink(tmp_name)
                os.utime(target)  # in use again: not an orphan for another grace period
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp_name, 0o644)
                os.replace(tmp_name, target)
            self.written.append(sha)
            return sha, size
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def _existing(self, sha256: str) -> Path:
        path = self.path(sha256)
        if not path.is_file():
            raise BlobNotFoundError(f"no blob {sha256}")
        return path

    def size(self, sha256: str) -> int:
        return self._existing(sha256).stat().st_size

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"no blob {sha256}") from exc

    def local_path(self, sha256: str) -> Path:
        return self._existing(sha256)

    def read_bytes(self, sha256: str) -> bytes:
        return self._existing(sha256).read_bytes()

    def copy_to(self, sha256: str, target: Path) -> None:
        shutil.copyfile(self._existing(sha256), target)

    def link_or_copy_to(self, sha256: str, target: Path) -> None:
        try:
            os.link(self._existing(sha256), target)
        except BlobNotFoundError:
            raise
        except OSError:  # another file system
            self.copy_to(sha256, target)

    def close(self) -> None:
        """Nothing to remove: `local_path` gives the blobs themselves."""

    def delete(self, sha256: str) -> bool:
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def modified(self, sha256: str) -> float | None:
        try:
            return self.path(sha256).stat().st_mtime
        except FileNotFoundError:
            return None

    def list_blobs(self) -> Iterator[BlobInfo]:
        if not self.root.is_dir():
            return
        for first in sorted(self.root.iterdir()):
            if not first.is_dir() or len(first.name) != 2:
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for path in sorted(second.iterdir()):
                    try:
                        st = path.stat()
                    except FileNotFoundError:
                        continue
                    if path.is_file():
                        yield BlobInfo(path.name, st.st_size, st.st_mtime)

    def list_partials(self) -> Iterator[BlobInfo]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob(f"{PARTIAL_PREFIX}*")):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            yield BlobInfo(path.name, st.st_size, st.st_mtime)

    def delete_partial(self, name: str) -> None:
        if not name.startswith(PARTIAL_PREFIX) or "/" in name:
            raise ValueError(f"not a half-written blob: {name!r}")
        (self.root / name).unlink(missing_ok=True)

    def derived_path(self, key: str) -> Path:
        """Where the derived data under `key` ("<sha256>.<name>") lives (it may not exist)."""
        sha = check_derived_key(key)
        return self.root / DERIVED / sha[:2] / sha[2:4] / key

    def put_derived(self, key: str, data: bytes) -> None:
        target = self.derived_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def read_derived(self, key: str) -> bytes | None:
        try:
            return self.derived_path(key).read_bytes()
        except FileNotFoundError:
            return None

    def drop_derived(self, sha256: str) -> None:
        folder = self.derived_path(f"{check_sha(sha256)}.x").parent
        if folder.is_dir():
            for path in folder.glob(f"{sha256}.*"):
                path.unlink(missing_ok=True)


def blob_store(settings: Settings) -> BlobStore:
    """The configured store (`storage.backend`): the local folder or the S3 bucket."""
    from core.settings import StorageBackend

    if settings.storage.backend is StorageBackend.S3:
        from core.storage_s3 import S3BlobStore

        return S3BlobStore.from_settings(settings.storage)
    return LocalBlobStore(settings.storage.uploads_dir)


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error (or one it wraps) says the disk or the quota is full: an `OSError`
    ENOSPC or EDQUOT, SQLite's "database or disk is full", PostgreSQL's disk_full (53100)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(current, "sqlstate", None) == "53100":
            return True
        if "database or disk is full" in str(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

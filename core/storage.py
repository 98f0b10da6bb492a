"""Content-addressed blob store: files live under their sha256, never under a user-supplied name."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DERIVED_KEY = re.compile(r"^([0-9a-f]{64})\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,120}$")
DERIVED = "derived"  # below the root: what trusted code computed from a blob (`put_derived`)
_CHUNK = 1024 * 1024


class BlobStore:
    """Stores bytes by content hash below `root` (deduplicated, written atomically)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[str] = []  # the hashes this instance stored (new or deduplicated)

    def path(self, sha256: str) -> Path:
        """Where the blob with this hash lives (it may not exist)."""
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Copy a stream into the store in chunks; returns (sha256, size)."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
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

    def put_file(self, source: Path) -> tuple[str, int]:
        with source.open("rb") as f:
            return self.put_stream(f)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream(io.BytesIO(data))

    def read_bytes(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def copy_to(self, sha256: str, target: Path) -> None:
        shutil.copyfile(self.path(sha256), target)

    # Derived data: what trusted code computed from a blob (its parsed form, token counts),
    # stored under "<sha256 of what it came from>.<what it is>" and removed with that blob.
    # Only trusted code writes these; readers still check what they read and recompute it
    # when it is missing or unreadable.

    def derived_path(self, key: str) -> Path:
        """Where the derived data under `key` ("<sha256>.<name>") lives (it may not exist)."""
        match = _DERIVED_KEY.match(key)
        if match is None:
            raise ValueError(f"not a derived-data key: {key!r}")
        sha = match.group(1)
        return self.root / DERIVED / sha[:2] / sha[2:4] / key

    def put_derived(self, key: str, data: bytes) -> None:
        """Store derived data under `key` (written atomically, replacing any older copy)."""
        target = self.derived_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
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
        """The derived data under `key`, None when there is none."""
        try:
            return self.derived_path(key).read_bytes()
        except FileNotFoundError:
            return None

    def drop_derived(self, sha256: str) -> None:
        """Remove everything derived from the blob `sha256` (call when the blob goes)."""
        folder = self.derived_path(f"{sha256}.x").parent
        if folder.is_dir():
            for path in folder.glob(f"{sha256}.*"):
                path.unlink(missing_ok=True)


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

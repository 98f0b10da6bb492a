"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph, moto's server), through boto3.

Keys are `<prefix>ab/cd/<sha256>`. An object appears only once its upload is complete (large
files go up in parts; a killed upload leaves an incomplete multipart upload, which the cleaner
aborts as a half-written blob). Storing bytes that are already there copies the object onto
itself, which renews its modification time without sending the bytes again.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from core.storage import (
    DERIVED,
    BlobInfo,
    BlobNotFoundError,
    BlobStore,
    check_derived_key,
    check_sha,
    hash_stream,
    is_sha,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from core.settings import StorageSettings

_TRANSFER = TransferConfig(multipart_threshold=64 * 1024**2, multipart_chunksize=64 * 1024**2)
_PARTIAL_SEP = "?uploadId="


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


@functools.cache
def _client(
    endpoint_url: str | None, region: str, access_key: str | None, secret_key: str | None
) -> S3Client:
    """One client per configuration (boto3 clients are thread-safe; sessions are not)."""
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        # path-style addressing: MinIO and most self-hosted stores have no per-bucket DNS
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


class S3BlobStore(BlobStore):
    """Blobs as objects in one bucket; local copies (for the sandbox) in a private temp folder."""

    def __init__(self, client: S3Client, bucket: str, *, prefix: str = "") -> None:
        super().__init__()
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self._copies: Path | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @classmethod
    def from_settings(cls, storage: StorageSettings) -> S3BlobStore:
        client = _client(
            storage.s3_endpoint_url,
            storage.s3_region,
            storage.s3_access_key.get_secret_value() if storage.s3_access_key else None,
            storage.s3_secret_key.get_secret_value() if storage.s3_secret_key else None,
        )
        return cls(client, storage.s3_bucket, prefix=storage.s3_prefix)

    def ensure_bucket(self) -> bool:
        """Create the bucket when it does not exist; whether it was created."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as exc:
            if not _missing(exc):
                raise
        self.client.create_bucket(Bucket=self.bucket)
        return True

    def key(self, sha256: str) -> str:
        check_sha(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    # --- writing ---------------------------------------------------------------------------
    def _store(self, sha: str, source: BinaryIO) -> None:
        key = self.key(sha)
        if self.exists(sha):
            # in use again: renew its modification time (not an orphan for another grace period)
            self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata={"sha256": sha},
            )
        else:
            source.seek(0)
            self.client.upload_fileobj(
                source, self.bucket, key, ExtraArgs={"Metadata": {"sha256": sha}}, Config=_TRANSFER
            )
        self.written.append(sha)

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        # The key is the hash, known only at the end: the bytes are spooled to an unnamed
        # local file on the way (gone with the process, whatever happens).
        with tempfile.TemporaryFile() as spool:
            sha, size = hash_stream(stream, cast(BinaryIO, spool))
            self._store(sha, cast(BinaryIO, spool))
        return sha, size

    def put_file(self, source: Path) -> tuple[str, int]:
        with source.open("rb") as f:  # a local file already: hash it, then send it
            sha, size = hash_stream(f)
            self._store(sha, f)
        return sha, size

    # --- reading ---------------------------------------------------------------------------
    def _head(self, sha256: str) -> dict[str, object] | None:
        try:
            return cast(
                dict[str, object], self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
            )
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise BlobNotFoundError(f"no blob {sha256}")
        return int(cast(int, head["ContentLength"]))

    def modified(self, sha256: str) -> float | None:
        head = self._head(sha256)
        if head is None:
            return None
        return float(head["LastModified"].timestamp())  # type: ignore[attr-defined]

    def open(self, sha256: str) -> BinaryIO:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFoundError(f"no blob {sha256}") from exc
            raise
        return cast(BinaryIO, body)  # botocore's StreamingBody is an io.IOBase

    def _copies_dir(self) -> Path:
        if self._copies is None:
            self._copies = Path(tempfile.mkdtemp(prefix="paretoboard-blobs-"))
            self._finalizer = weakref.finalize(
                self, shutil.rmtree, str(self._copies), ignore_errors=True
            )
        return self._copies

    def local_path(self, sha256: str) -> Path:
        target = self._copies_dir() / check_sha(sha256)
        if not target.is_file():
            partial = target.with_name(f".{sha256}")
            try:
                self.client.download_file(
                    self.bucket, self.key(sha256), str(partial), Config=_TRANSFER
                )
            except ClientError as exc:
                partial.unlink(missing_ok=True)
                if _missing(exc):
                    raise BlobNotFoundError(f"no blob {sha256}") from exc
                raise
            partial.chmod(0o644)
            partial.replace(target)
        return target

    def copy_to(self, sha256: str, target: Path) -> None:
        if self._copies is not None and (self._copies / sha256).is_file():
            shutil.copyfile(self._copies / sha256, target)
            return
        super().copy_to(sha256, target)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._copies = None
        self._finalizer = None

    # --- removing and listing --------------------------------------------------------------
    def delete(self, sha256: str) -> bool:
        if not self.exists(sha256):
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        return True

    def list_blobs(self) -> Iterator[BlobInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if is_sha(name) and obj["Key"] == self.key(name):
                    yield BlobInfo(name, obj["Size"], obj["LastModified"].timestamp())

    # --- derived data ----------------------------------------------------------------------
    def derived_key(self, key: str) -> str:
        check_derived_key(key)
        return f"{self.prefix}{DERIVED}/{key}"

    def put_derived(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.derived_key(key), Body=data)

    def read_derived(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.derived_key(key))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        data: bytes = response["Body"].read()
        return data

    def drop_derived(self, sha256: str) -> None:
        prefix = f"{self.prefix}{DERIVED}/{check_sha(sha256)}."
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                self.client.delete_object(Bucket=self.bucket, Key=obj["Key"])

    def list_partials(self) -> Iterator[BlobInfo]:
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                name = f"{upload['Key']}{_PARTIAL_SEP}{upload['UploadId']}"
                yield BlobInfo(name, 0, upload["Initiated"].timestamp())

    def delete_partial(self, name: str) -> None:
        key, sep, upload_id = name.partition(_PARTIAL_SEP)
        if not sep or not key.startswith(self.prefix):
            raise ValueError(f"not a half-written blob: {name!r}")
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) != "NoSuchUpload":
                raise

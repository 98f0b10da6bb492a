"""The one settings object: environment variables prefixed `PARETOBOARD_`, nested with `__`."""

from __future__ import annotations

import enum
import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "insecure-development-secret-change-me"
DEFAULT_DB_URL = "sqlite:///{data_dir}/paretoboard.db"
REPO_ROOT = Path(__file__).resolve().parent.parent


class Mode(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class DatabaseSettings(BaseModel):
    # `{data_dir}` is replaced by the storage data folder (embedded SQLite default).
    # PostgreSQL: postgresql+psycopg://user:password@host:5432/dbname
    url: SecretStr = SecretStr(DEFAULT_DB_URL)
    echo: bool = False


class BrokerSettings(BaseModel):
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    result_backend: SecretStr = SecretStr("redis://127.0.0.1:6379/1")


class StorageBackend(enum.StrEnum):
    LOCAL = "local"  # blobs under <data_dir>/uploads: one host (the embedded default)
    S3 = "s3"  # blobs in an S3-compatible bucket: web and workers on any number of hosts


class StorageSettings(BaseModel):
    data_dir: Path = REPO_ROOT / "var"
    # Where accepted uploads (blobs) live (core/storage.py). Uploads in progress are staged
    # on the web process's local disk (<data_dir>/staging) either way.
    backend: StorageBackend = StorageBackend.LOCAL
    # S3-compatible object store (backend "s3"): endpoint (None: AWS itself), bucket, region,
    # an optional key prefix, and the credentials (None: boto3's own chain, e.g. an IAM role).
    s3_endpoint_url: str | None = None
    s3_bucket: str = "paretoboard"
    s3_region: str = "us-east-1"
    s3_prefix: str = "blobs/"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    # Default folder of task data imported by the run command (operators pass any folder).
    tasks_dir: Path = REPO_ROOT.parent / "shared" / "data" / "elue"
    tokenizers_dir: Path = REPO_ROOT.parent / "shared" / "data" / "tokenizers"

    # Per-job folders handed to the sandbox; it and every folder above it must be
    # traversable (o+x) by the sandbox's unprivileged uid. Default: <data_dir>/jobs.
    jobs_dir: Path | None = None
    # Blobs no submission references (and half-written ones) older than this are removed at
    # web start and by `paretoboard reconcile` (core/leftovers.py); uploads in flight are safe.
    orphan_grace_seconds: float = Field(3600.0, ge=0)

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def sandbox_jobs_dir(self) -> Path:
        return self.jobs_dir or self.data_dir / "jobs"


class LimitsSettings(BaseModel):
    prediction_file_bytes: int = 50 * 1024 * 1024
    model_file_bytes: int = 1024 * 1024
    # Bounded admission (web/admission.py): uploads one web process handles at once; one
    # more is answered 503 with Retry-After at once (clients send it again after that long).
    uploads_in_flight: int = Field(4, ge=1)
    upload_retry_after_seconds: int = Field(2, ge=1)
    request_bytes: int = 200 * 1024 * 1024
    max_problems: int = Field(50, ge=1)
    submissions_per_task_per_day: int = 5
    self_reported_per_day: int = Field(20, ge=1)  # self-reported entries per user, 24 h rolling
    # Uploads: prediction files per submission (separate files or zip entries), and zip archives.
    max_prediction_files: int = Field(100, ge=1)
    zip_max_entries: int = Field(100, ge=1)
    zip_max_uncompressed_bytes: int = 500 * 1024 * 1024
    zip_max_ratio: float = Field(200.0, gt=1)  # uncompressed / compressed, per entry
    # Model weights (one safetensors file per submission). An upload that carries weights may
    # be `request_bytes + max_weights_bytes` in all.
    max_weights_bytes: int = Field(2 * 1024**3, ge=1)
    max_weights_tensors: int = Field(100_000, ge=1)
    # Cost jobs (sandbox)
    sandbox_wall_seconds: float = 900.0
    sandbox_cpu_seconds: int = 1800
    sandbox_memory_bytes: int = 8 * 1024**3
    sandbox_threads: int = 2  # torch threads inside the sandbox
    # Whole-sandbox limits (docs/deploy.md, "Sandbox limits"): one cgroup per sandboxed run
    # bounds all its processes together: memory (`sandbox_total_memory_bytes`, default the
    # per-process `sandbox_memory_bytes`), processes and threads (`sandbox_processes`, also
    # each run's RLIMIT_NPROC) and CPU time (each program's CPU-time limit). Without a usable
    # cgroup (cgroup-tools, root, a writable cgroup hierarchy) the worker logs at start-up which
    # totals are unbounded and runs on; `sandbox_require_cgroup` makes it refuse instead.
    sandbox_total_memory_bytes: int | None = Field(None, ge=64 * 1024**2)
    sandbox_processes: int = Field(256, ge=16)
    sandbox_require_cgroup: bool = False
    # Verification (weights given): the trusted runner's wall-clock limit per weights file,
    # inside the cost job (docs/verification.md)
    # (BERT-base on the five ELUE test sets: about 1,560 s on a 2-core CPU, bench_verify)
    verify_wall_seconds: float = 2400.0
    # Pre-flight check (weights given: the model captured while the upload request waits)
    preflight_seconds: float = 120.0
    # How long a submission with weights waits for that check (0: never; then, or when no
    # pre-flight worker answers in time, the weights are checked when the cost job runs)
    preflight_wait_seconds: float = 150.0
    # Counting processes per cost job (0: one per CPU available); lower it on hosts that run
    # several cost jobs at once.
    sandbox_workers: int = Field(0, ge=0)
    max_tokens: int = 512  # truncation length for service-side tokenization
    # Tokenizing a submission's test inputs runs in a child process of the score worker
    # (worker/tokenize_job.py), bounded by these; past them the submission fails, naming its
    # tokenizer file.
    tokenizer_seconds: float = Field(300.0, gt=0)
    tokenizer_memory_bytes: int = Field(4 * 1024**3, ge=256 * 1024**2)
    # Fair cost queue (core/submissions/cost_queue.py): each user has at most this many cost
    # jobs queued or running; further ones wait, and are sent as that user's jobs finish.
    cost_jobs_per_user: int = Field(2, ge=1)
    # "auto": CUDA when the worker host has it, else CPU; or force "cpu" / "cuda".
    cost_device: str = "auto"
    # Worker task time limits (Celery soft / hard), seconds
    # (a cost job: capture + count, sandbox_wall_seconds, then verification, verify_wall_seconds;
    # a dead worker is noticed by its lease in about a minute, not by these)
    task_soft_seconds: int = 3600
    task_hard_seconds: int = 3900
    # Recovery (docs/reliability.md). A running job renews its lease in the broker's Redis
    # every `heartbeat_seconds`; the reconciler (every `reconcile_every_seconds`) re-sends a job
    # whose lease is older than `lease_seconds` (its worker died), and one the broker has no
    # record of (lost with a Redis that had no persistence) once its state is older than
    # `stuck_after_seconds`. Every delivery counts as an attempt: after `max_attempts` the
    # submission fails, as the submitter's fault when their model was running each time its
    # worker died, else as the service's.
    heartbeat_seconds: float = Field(10.0, gt=0)
    lease_seconds: float = Field(40.0, gt=0)
    stuck_after_seconds: int = 120
    reconcile_every_seconds: int = 15
    max_attempts: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> LimitsSettings:
        if self.lease_seconds < 2 * self.heartbeat_seconds:
            raise ValueError("limits.lease_seconds must be at least twice limits.heartbeat_seconds")
        return self


class WorkerSettings(BaseModel):
    # Where score workers send cost jobs: "cost" (GPU workers, CPU where a worker has none),
    # or "cost-cpu" for installations whose cost workers are kept to the CPU (docs/deploy.md).
    cost_queue: str = Field("cost", pattern=r"^cost(-cpu)?$")
    # How many cost jobs the installation runs at once (all cost workers' processes together);
    # only the wait estimate on submission pages reads it.
    cost_slots: int = Field(1, ge=1)
    # The workers' CPU niceness, at least (`paretoboard worker` raises its own at start; the
    # pool processes and every sandbox they run inherit it): the web processes, at 0, get the
    # CPU first when a cost job's counting (tens of CPU-seconds) shares a host with them;
    # 0 leaves it as started (docs/reliability.md "## Load").
    nice: int = Field(10, ge=0, le=19)


class ScoringSettings(BaseModel):
    # 95% percentile bootstrap over the test samples (core/uncertainty.py, docs/ranking.md):
    # resamples per interval and the seed (with the task name) of every resampling.
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    bootstrap_seed: int = Field(20261209, ge=0)


class LogFormat(enum.StrEnum):
    JSON = "json"  # one JSON object per line (production, log shippers)
    TEXT = "text"


class Settings(BaseSettings):
    """Root settings; read once per process via `get_settings()`.

    Besides the environment, a secrets folder named by PARETOBOARD_SECRETS_DIR (e.g.
    /run/secrets) is read: one file per setting, named like its variable in lower case
    (`paretoboard_secret_key`; a section as JSON, e.g. `paretoboard_db` = {"url": "..."}).
    """

    model_config = SettingsConfigDict(
        env_prefix="PARETOBOARD_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    mode: Mode = Mode.DEVELOPMENT
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    base_url: str = "http://127.0.0.1:8000"
    db: DatabaseSettings = DatabaseSettings()
    broker: BrokerSettings = BrokerSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitsSettings = LimitsSettings()
    worker: WorkerSettings = WorkerSettings()
    scoring: ScoringSettings = ScoringSettings()
    log_format: LogFormat = LogFormat.TEXT

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> Settings:
        if self.mode is Mode.PRODUCTION:
            if self.secret_key.get_secret_value() == DEFAULT_SECRET:
                raise ValueError(
                    "PARETOBOARD_SECRET_KEY must be set to a random value in production mode"
                )
            if len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("PARETOBOARD_SECRET_KEY must be at least 32 characters")
            if self.db.url.get_secret_value() == DEFAULT_DB_URL:
                raise ValueError(
                    "PARETOBOARD_DB__URL must name the production database in production mode"
                )
        return self

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, with `{data_dir}` resolved."""
        return self.db.url.get_secret_value().replace(
            "{data_dir}", str(self.storage.data_dir.resolve())
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache to change them)."""
    secrets_dir = os.environ.get("PARETOBOARD_SECRETS_DIR")
    if secrets_dir:
        return Settings(_secrets_dir=secrets_dir)
    return Settings()

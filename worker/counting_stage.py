"""Stage 3 of an evaluation: count per-sample FLOPs and parameters in the sandbox, store them.

The worker (trusted) tokenizes the task's public inputs, writes a job folder with the model
file and the inputs (token ids and shapes, never labels), runs `worker.cost_job` in the sandbox
and validates what comes back before anything is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.costs import CostRows, CountedBy, write_result_costs
from core.models import FileRole, Result, Submission, SubmissionFile, Task
from core.predictions import ParsedPredictions, PredictionFormat
from core.settings import REPO_ROOT, Settings
from core.storage import BlobStore
from core.tasks.manifest import LabelKind
from core.tasks.service import load_test_texts, manifest_of
from core.tokenizers import cached_tokenizer, encode, registered_tokenizers
from worker.capture import CAPTURE_MARKER
from worker.cost_output import CostOutput, EntryOutput, ErrorOutput, parse_cost_output
from worker.sandbox import (
    Bind,
    SandboxLimits,
    SandboxResult,
    make_job_dir,
    run_sandboxed,
    sandbox_python,
)
from worker.scoring_stage import parse_stored, prediction_files
from worker.tokenize_job import TaskInputs, TokenizeRequest, tokenize
from worker.verification import VerifyJobEntry, VerifyRequest, VerifyTask

CODE_TARGET = "/opt/paretoboard"
JOB_TARGET = "/job"
MAX_MISMATCH_EXAMPLES = 50
TOKEN_MODULES = ("emb", "embeddings", "embedding")


@dataclass
class CostJob:
    """What one sandbox run counts: entries, and which results read which entry."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    result_entry: dict[int, str] = field(default_factory=dict)  # result id -> entry key
    mismatches: dict[int, list[dict[str, int]]] = field(default_factory=dict)
    mismatch_counts: dict[int, int] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)
    # Verification (weights given): what the trusted runner reads for each entry
    verify_entries: list[dict[str, Any]] = field(default_factory=list)
    task_inputs: dict[str, TaskInputs] = field(default_factory=dict)  # task name -> inputs
    task_width: dict[str, int] = field(default_factory=dict)
    parsed: dict[int, ParsedPredictions] = field(default_factory=dict)  # result id -> its file


def _tokenizer(
    session: Session, store: BlobStore, submission: Submission, settings: Settings
) -> tuple[Path, str, bool]:
    """The submission's tokenizer file, how to name it, and whether the submitter uploaded it."""
    upload = session.scalar(
        select(SubmissionFile).where(
            SubmissionFile.submission_id == submission.id, SubmissionFile.role == FileRole.TOKENIZER
        )
    )
    if upload is not None:
        return (
            store.local_path(upload.sha256),
            f"the uploaded tokenizer file {upload.original_name!r}",
            True,
        )
    registry = registered_tokenizers(settings.storage.tokenizers_dir)
    name = submission.tokenizer_name or "bert-base-uncased"
    if name not in registry:
        raise LookupError(f"tokenizer {name!r} is not registered on this worker")
    return registry[name], f"the registered tokenizer {name!r}", False


def job_texts(
    session: Session, store: BlobStore, submission: Submission, settings: Settings
) -> TokenizeRequest:
    """What `tokenize_inputs` needs, read inside a transaction (the tokenizing happens outside)."""
    path, label, uploaded = _tokenizer(session, store, submission, settings)
    texts: dict[int, list[tuple[str, ...]]] = {}
    names: dict[int, str] = {}
    for _file, task in prediction_files(session, submission):
        if task.id not in texts:
            texts[task.id] = load_test_texts(session, task)
            names[task.id] = task.name
    return TokenizeRequest(
        tokenizer=path, label=label, uploaded=uploaded, texts=texts, task_names=names
    )


TOKEN_COUNTS_VERSION = 1


def _tokenizer_sha256(
    session: Session, store: BlobStore, submission: Submission, settings: Settings
) -> str:
    """The content hash of the submission's tokenizer (the uploaded blob's, or the registered
    file's): what its token counts are kept under."""
    path, _label, uploaded = _tokenizer(session, store, submission, settings)
    if uploaded:
        return path.name  # a blob is named by its sha256
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _token_counts_key(tokenizer_sha256: str, task: Task, settings: Settings) -> str:
    return (
        f"{tokenizer_sha256}.tokens-v{TOKEN_COUNTS_VERSION}-{task.test_sha256[:32]}"
        f"-{settings.limits.max_tokens}.npy"
    )


def keep_token_counts(
    session: Session,
    store: BlobStore,
    submission: Submission,
    settings: Settings,
    inputs: Mapping[int, TaskInputs],
) -> None:
    """Keep each task's token counts, computed once by `prepare_counting` for this tokenizer,
    so that finishing the job does not tokenize again (`kept_token_counts`)."""
    sha = _tokenizer_sha256(session, store, submission, settings)
    for _file, task in prediction_files(session, submission):
        tin = inputs.get(task.id)
        if tin is None:
            continue
        buf = io.BytesIO()
        np.save(buf, np.asarray(tin.lengths, dtype=np.int64), allow_pickle=False)
        with contextlib.suppress(OSError):  # a full disk: finishing tokenizes again
            store.put_derived(_token_counts_key(sha, task, settings), buf.getvalue())


def kept_token_counts(
    session: Session, store: BlobStore, submission: Submission, settings: Settings
) -> dict[int, TaskInputs] | None:
    """Each task's token counts as `keep_token_counts` kept them (token lengths only, no ids:
    enough to check a cost report and store its costs, not a job to send); None when one is
    missing or unreadable (a job prepared before they were kept): tokenize again."""
    sha = _tokenizer_sha256(session, store, submission, settings)
    out: dict[int, TaskInputs] = {}
    for _file, task in prediction_files(session, submission):
        if task.id in out:
            continue
        data = store.read_derived(_token_counts_key(sha, task, settings))
        if data is None:
            return None
        try:
            lengths = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if lengths.shape != (task.test_size,) or lengths.dtype != np.int64:
            return None
        out[task.id] = TaskInputs(ids=[], lengths=lengths.tolist(), first_segments=None)
    return out


def tokenize_inputs(request: TokenizeRequest, settings: Settings) -> dict[int, TaskInputs]:
    """Token ids per task, from a bounded child process; call it with no transaction open.

    Raises TokenizerError (slow, crashing or memory-hungry tokenizer; the message names it).
    """
    limits = settings.limits
    return tokenize(
        request,
        max_tokens=limits.max_tokens,
        seconds=limits.tokenizer_seconds,
        memory_bytes=limits.tokenizer_memory_bytes,
    )


def _task_inputs(
    session: Session, task: Task, tokenizer_path: Path, settings: Settings
) -> TaskInputs:
    texts = load_test_texts(session, task)
    tok = cached_tokenizer(tokenizer_path, max_tokens=settings.limits.max_tokens)
    first: list[int] | None = None
    if texts and len(texts[0]) == 2:  # pairs: ids and segments from one encoding (as `encode`)
        encodings = tok.encode_batch([(a, b) for a, b in texts])
        ids = [e.ids for e in encodings]
        first = [e.type_ids.count(0) for e in encodings]
    else:
        ids = encode(tok, texts)
    return TaskInputs(ids=ids, lengths=[len(x) for x in ids], first_segments=first)


def _declared_length(path: tuple[Any, ...]) -> int | None:
    for call in path:
        if call.name in TOKEN_MODULES or call.name.endswith("emb"):
            return int(call.shape[0])
    return None


def build_job(
    session: Session,
    store: BlobStore,
    submission: Submission,
    settings: Settings,
    inputs: Mapping[int, TaskInputs],
) -> CostJob:
    """One entry per static task (shared by its points) and one per dynamic prediction file.

    `inputs`: the tasks' token ids (`job_texts` then `tokenize_inputs`, outside the transaction).
    """
    job = CostJob()
    results = {
        (r.task_id, r.point): r
        for r in session.scalars(select(Result).where(Result.submission_id == submission.id))
    }
    for file, task in prediction_files(session, submission):
        result = results[(task.id, file.point or "")]
        parsed: ParsedPredictions = parse_stored(store, file, task, settings)
        if task.id not in inputs:
            raise LookupError(f"the {task.name} inputs were not tokenized (the job changed)")
        add_point(job, result.id, task, parsed, inputs[task.id], file.original_name)
    return job


def add_point(
    job: CostJob,
    result_id: int,
    task: Task,
    parsed: ParsedPredictions,
    tin: TaskInputs,
    file_name: str,
) -> None:
    """The job's entry for one prediction file (a static task's entry is shared by its points);
    also what `paretoboard count` builds for files that are not stored anywhere."""
    job.task_inputs[task.name] = tin
    manifest = manifest_of(task)
    width = 1 if manifest.label_kind is LabelKind.REGRESSION else max(1, len(manifest.labels))
    job.task_width[task.name] = width
    job.kinds[result_id] = parsed.format.value
    job.parsed[result_id] = parsed
    if parsed.format is PredictionFormat.SIMPLE:
        key = f"static:{task.name}"
        if key not in job.sizes:
            job.entries.append(
                {
                    "key": key,
                    "kind": "static",
                    "lengths": tin.lengths,
                    "token_ids": tin.ids,
                    "first_segments": tin.first_segments,
                }
            )
            job.sizes[key] = len(tin.lengths)
            job.verify_entries.append({"key": key, "task": task.name, "width": width})
    elif parsed.format is PredictionFormat.EXIT_LAYER:
        key = f"exit:{result_id}"
        assert parsed.exit_layers is not None
        job.entries.append(
            {
                "key": key,
                "kind": "exit_layer",
                "exit_layers": [int(k) for k in parsed.exit_layers],
                "lengths": tin.lengths,
                "file": file_name,
            }
        )
        job.sizes[key] = len(tin.lengths)
        job.verify_entries.append(
            {
                "key": key,
                "task": task.name,
                "width": width,
                "targets": [f"exit_{int(k)}" for k in parsed.exit_layers],
            }
        )
    else:
        key = f"modules:{result_id}"
        assert parsed.modules is not None
        job.entries.append(
            {
                "key": key,
                "kind": "modules",
                "paths": [[[c.name, list(c.shape)] for c in path] for path in parsed.modules],
                "lengths": tin.lengths,
                "file": file_name,
            }
        )
        job.sizes[key] = len(parsed.modules)
        job.verify_entries.append(
            {
                "key": key,
                "task": task.name,
                "width": width,
                "targets": [path[-1].name if path else "" for path in parsed.modules],
            }
        )
        examples: list[dict[str, int]] = []
        count = 0
        for i, path in enumerate(parsed.modules):
            declared = _declared_length(path)
            if declared is not None and declared != tin.lengths[i]:
                count += 1
                if len(examples) < MAX_MISMATCH_EXAMPLES:
                    examples.append({"index": i, "declared": declared, "tokenized": tin.lengths[i]})
        job.mismatches[result_id] = examples
        job.mismatch_counts[result_id] = count
    job.result_entry[result_id] = key


def weights_files(session: Session, submission: Submission) -> dict[int | None, SubmissionFile]:
    """The submission's weights files by task id (None: the file for every task)."""
    rows = session.scalars(
        select(SubmissionFile).where(
            SubmissionFile.submission_id == submission.id, SubmissionFile.role == FileRole.WEIGHTS
        )
    )
    return {f.task_id: f for f in rows}


def build_verify_request(
    session: Session, submission: Submission, job: CostJob
) -> VerifyRequest | None:
    """What the cost worker needs to verify the submission's points; None without weights."""
    files = weights_files(session, submission)
    if not files:
        return None
    tasks = {t.name: t.id for t in session.scalars(select(Task))}
    weights: dict[str, str] = {}
    for name in job.task_inputs:
        chosen = files.get(tasks.get(name)) or files.get(None)
        if chosen is not None:
            weights[name] = chosen.sha256
    inputs = {
        name: VerifyTask(token_ids=tin.ids, first_segments=tin.first_segments)
        for name, tin in job.task_inputs.items()
        if name in weights
    }
    entries = [VerifyJobEntry.model_validate(e) for e in job.verify_entries if e["task"] in weights]
    return VerifyRequest(weights=weights, inputs=inputs, entries=entries)


def sandbox_limits(settings: Settings) -> SandboxLimits:
    """The capture's limits (`SandboxLimits.for_("capture", settings)`)."""
    return SandboxLimits.for_("capture", settings)


@dataclass(frozen=True)
class SandboxRun:
    output: CostOutput | None
    log: str
    failure: str | None  # why the run failed (user-facing), None when output is valid
    # Machine-readable reason of a failure (the `reason` label of the sandbox failure metric).
    reason: str | None = None
    # The graph that was counted (plain data from the sandbox), for the verification run
    capture: dict[str, Any] | None = None


# How a refused allocation shows in an error report (Python, torch's allocator, errno ENOMEM).
_OUT_OF_MEMORY = ("MemoryError", "can't allocate memory", "Cannot allocate memory")


def _size(n: int) -> str:
    """1073741824 -> "1 GiB", 1536 -> "1.5 KiB"."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n} bytes"


def failure_reason(result: SandboxResult) -> str:
    """A short, bounded label for why the sandbox stopped a job (metrics)."""
    reason = result.killed_reason
    if result.timed_out or reason == "wall_timeout":
        return "wall_timeout"
    if result.stdout_truncated or reason == "stdout_limit":
        return "stdout_limit"
    if result.stderr_truncated or reason == "stderr_limit":
        return "stderr_limit"
    if reason in ("sandbox_memory", "sandbox_cpu"):
        return reason.replace("sandbox_", "total_")  # total_memory, total_cpu
    name = (reason or "").removeprefix("signal:")
    return {
        "SIGKILL": "killed",
        "SIGXCPU": "cpu_limit",
        "SIGXFSZ": "file_size_limit",
        "SIGSEGV": "crash",
        "SIGBUS": "crash",
        "SIGABRT": "crash",
    }.get(name, "stopped")


def _stop_reason(result: SandboxResult, limits: SandboxLimits) -> str | None:
    """Why the sandbox ended the job before it reported, in plain words; None if it did not.

    A "signal:NAME" reason comes from the program's own exit status (untrusted, informative).
    """
    reason = result.killed_reason
    wall = f"the wall-clock limit of {limits.wall_seconds:g} s"
    cpu = f"the CPU-time limit of {limits.cpu_seconds} s"
    memory = f"the memory limit of {_size(limits.memory_bytes)}"
    if result.timed_out or reason == "wall_timeout":
        return f"it ran longer than {wall}"
    if result.stdout_truncated or reason == "stdout_limit":
        return (
            f"it wrote more than {_size(limits.stdout_bytes)} to its standard output (the "
            "limit; the cost report goes there, print() goes to the log)"
        )
    if result.stderr_truncated or reason == "stderr_limit":
        return (
            f"it printed more than {_size(limits.stderr_bytes)} of log (the limit on its "
            "standard error and print() output)"
        )
    if reason == "sandbox_memory":
        return (
            f"the sandbox as a whole used more than {_size(limits.memory_total)} of memory "
            "(the limit for all its processes together)"
        )
    if reason == "sandbox_cpu":
        return (
            f"the sandbox as a whole used more than the CPU-time limit of {limits.cpu_total:g} s "
            "(the limit for all its processes together)"
        )
    if reason is None or not reason.startswith("signal:"):
        return None if reason is None else f"it was stopped ({reason})"
    name = reason.removeprefix("signal:")
    if name == "SIGKILL":
        return f"it was killed by SIGKILL (likely {cpu}, or {memory})"
    if name == "SIGXCPU":
        return f"it was killed by SIGXCPU: it used more than {cpu}"
    if name == "SIGXFSZ":
        return (
            f"it was killed by SIGXFSZ: it wrote a file larger than the limit of "
            f"{_size(limits.fsize_bytes)}"
        )
    if name in ("SIGSEGV", "SIGBUS", "SIGABRT"):
        return (
            f"it crashed with {name} (in native code; this often follows a failed "
            f"allocation under {memory})"
        )
    return f"it was killed by {name}"


def _capture_spec(job: CostJob, settings: Settings) -> dict[str, Any]:
    """The sandbox's job file: the model, and the distinct token counts of the samples."""
    lengths: set[int] = set()
    for entry in job.entries:
        lengths.update(int(n) for n in entry.get("lengths", []))
    return {
        "model": f"{JOB_TARGET}/model.py",
        "threads": settings.limits.sandbox_threads,
        "max_length": settings.limits.max_tokens,
        "lengths": sorted(lengths),
        "seconds": max(1.0, settings.limits.sandbox_wall_seconds - 30.0),
    }


def run_cost_job(model_file: bytes, job: CostJob, settings: Settings, *, device: str) -> SandboxRun:
    """Capture the model's graph in the sandbox, then count it in a trusted process.

    Needs no database and no upload folder: the model file's bytes and the job's entries come
    from the caller (in production, a `CostRequest` received over the broker). The sandbox only
    captures (`worker.capture`); every number comes from `worker.graphcount`, a process that
    never runs submitted code.
    """
    run = capture_in_sandbox(model_file, _capture_spec(job, settings), settings, device=device)
    if run.capture is None:
        return run
    return count_capture_trusted(run.capture, job, settings, log=run.log, device=device)


def capture_in_sandbox(
    model_file: bytes,
    spec: dict[str, Any],
    settings: Settings,
    *,
    device: str,
    limits: SandboxLimits | None = None,
) -> SandboxRun:
    """`worker.capture` in the sandbox; the capture (a dict) or why there is none."""
    base = settings.storage.sandbox_jobs_dir
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    limits = limits or sandbox_limits(settings)
    job_dir = make_job_dir(base)
    try:
        model = job_dir / "model.py"
        model.write_bytes(model_file)
        model.chmod(0o644)
        (job_dir / "job.json").write_text(json.dumps(spec))
        (job_dir / "job.json").chmod(0o644)
        result = run_sandboxed(
            [sandbox_python(), "-m", "worker.capture", f"{JOB_TARGET}/job.json"],
            binds=[
                Bind(job_dir, JOB_TARGET),
                Bind(REPO_ROOT / "core", f"{CODE_TARGET}/core"),
                Bind(REPO_ROOT / "worker", f"{CODE_TARGET}/worker"),
            ],
            limits=limits,
            gpu=device != "cpu",
            env=_sandbox_env(device),
        )
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
    log = result.stderr.decode("utf-8", "replace")[-200_000:]
    stopped = _stop_reason(result, limits)
    if stopped is not None:
        return SandboxRun(None, log, f"The cost job was stopped: {stopped}", failure_reason(result))
    if not result.stdout.strip():
        return SandboxRun(
            None,
            log,
            f"The model process exited with code {result.returncode} without a capture of "
            "its graph; see the log",
            "no_report",
        )
    try:
        # the capture follows the last marker; anything before it is not the capture's
        _before, marker, body = result.stdout.rpartition(CAPTURE_MARKER)
        if not marker:
            raise ValueError("no capture marker")
        capture = json.loads(body)
        if not isinstance(capture, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return SandboxRun(
            None,
            log,
            f"The model process exited with code {result.returncode} and an unreadable "
            f"capture ({str(exc)[:300]}); see the log",
            "invalid_report",
        )
    if not capture.get("ok"):
        error = capture.get("error") if isinstance(capture.get("error"), dict) else {}
        output = _error_output(error or {"type": "CaptureError", "message": "no capture"})
        message = output.error.message if output.error is not None else "no capture"
        reason = "model_error"
        if any(sign in message for sign in _OUT_OF_MEMORY):
            message += f" (the memory limit is {_size(limits.memory_bytes)} per process)"
            reason = "out_of_memory"
        return SandboxRun(output, log, message, reason)
    return SandboxRun(None, log, None, capture=capture)


def _error_output(error: dict[str, Any]) -> CostOutput:
    problems = error.get("problems")
    return CostOutput(
        ok=False,
        error=ErrorOutput(
            type=str(error.get("type", "Error"))[:200],
            kind=str(error.get("kind", "model"))[:40],
            message=str(error.get("message", ""))[:8000],
            problems=[p for p in problems if isinstance(p, dict)][:100]
            if isinstance(problems, list)
            else [],
            traceback=str(error.get("traceback", ""))[-40000:],
        ),
    )


# The trusted counter's own bounds: it reads a capture that came out of the sandbox.
COUNTER_CPU_SECONDS = 600
COUNTER_MEMORY_BYTES = 24 * 2**30


def count_capture_trusted(
    capture: dict[str, Any], job: CostJob, settings: Settings, *, log: str, device: str
) -> SandboxRun:
    """Count a capture in `python -m worker.graphcount` (CPU and memory bounded)."""
    request = json.dumps({"capture": capture, "entries": job.entries}).encode()
    argv = [
        "prlimit",
        f"--cpu={COUNTER_CPU_SECONDS}",
        f"--as={COUNTER_MEMORY_BYTES}",
        "--core=0",
        sys.executable,
        "-m",
        "worker.graphcount",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        done = subprocess.run(
            argv,
            input=request,
            capture_output=True,
            timeout=settings.limits.sandbox_wall_seconds,
            cwd=REPO_ROOT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return SandboxRun(
            None,
            log,
            "Counting the captured graph took longer than "
            f"{settings.limits.sandbox_wall_seconds:g} s",
            "counter_timeout",
        )
    log += "\n" + done.stderr.decode("utf-8", "replace")[-20_000:]
    try:
        output = parse_cost_output(done.stdout, job.sizes)
    except Exception as exc:  # the counter itself broke: ours, not the submitter's
        detail = getattr(exc, "message", str(exc))
        raise CounterError(
            f"the trusted counter exited with code {done.returncode} and no valid report "
            f"({detail[:500]}): {done.stderr.decode('utf-8', 'replace')[-2000:]}"
        ) from exc
    if not output.ok:
        assert output.error is not None
        if output.error.kind == "counter":
            raise CounterError(f"the trusted counter failed: {output.error.message}")
        return SandboxRun(output, log, output.error.message, "model_error")
    return SandboxRun(output.model_copy(update={"device": device}), log, None, capture=capture)


class CounterError(RuntimeError):
    """The trusted counter failed on a valid capture: the service's fault."""


def _sandbox_env(device: str) -> dict[str, str]:
    """The job's environment; a worker kept to some GPUs passes that choice on."""
    env = {
        "PYTHONPATH": CODE_TARGET,
        # no network in the sandbox: transformers fails at once instead of retrying the hub
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": "/tmp/hf",
    }
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if device != "cpu" and visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return env


def store_costs(session: Session, submission: Submission, job: CostJob, output: CostOutput) -> None:
    """Write each result's cost summary and per-sample arrays (upsert: re-runs overwrite)."""
    assert output.params is not None
    submission.params = output.params
    for result in session.scalars(select(Result).where(Result.submission_id == submission.id)):
        key = job.result_entry.get(result.id)
        if key is None:
            continue
        entry: EntryOutput = output.entries[key]
        elue = np.asarray(
            entry.per_sample_flops_elue or entry.per_sample_flops_without_norm, dtype=np.int64
        )
        without_norm = np.asarray(entry.per_sample_flops_without_norm, dtype=np.float64)
        details = {
            "kind": job.kinds.get(result.id),
            "entry": key,
            "flops_without_norm_mean": float(without_norm.mean()) if without_norm.size else 0.0,
            "flops_elue_mean": float(elue.mean()) if elue.size else None,
            "incomplete": list(entry.incomplete),
            "cross_check": dict(entry.cross_check),
            "param_kinds": dict(output.param_kinds),
            "polynomial": output.polynomial,
            "counter_version": output.counter_version,
            "rule_hash": output.rule_hash,
            "n_counts": entry.n_counts,
            "n_traces": entry.n_traces,
            "n_check_traces": entry.n_check_traces,
            "content_dependent": entry.content_dependent,
            "per_sample_counted": entry.per_sample_counted,
            "cross_check_agrees": entry.all_agree,
            "disagreements": [d.model_dump() for d in entry.disagreements],
            "count_seconds": entry.seconds,
            "mismatch_count": job.mismatch_counts.get(result.id, 0),
            "notes": list(output.notes),
        }
        write_result_costs(
            session,
            result,
            CostRows(
                flops=np.asarray(entry.per_sample_flops, dtype=np.int64),
                flops_elue=elue,
                per_operator=entry.per_operator,
                per_module=entry.per_module,
                uncounted=entry.uncounted,
                mismatches=job.mismatches.get(result.id, []),
                details=details,
            ),
            counted=CountedBy(
                device=output.device,
                versions=output.versions,
                incomplete=bool(entry.incomplete),
                disagrees=not entry.all_agree,
                counter_version=output.counter_version,
                rule_hash=output.rule_hash,
                params=output.params,
            ),
        )
    session.flush()


def model_sha256(session: Session, submission: Submission) -> str:
    sha = session.scalar(
        select(SubmissionFile.sha256).where(
            SubmissionFile.submission_id == submission.id, SubmissionFile.role == FileRole.MODEL
        )
    )
    if sha is None:
        raise LookupError("the submission has no model file")
    return sha

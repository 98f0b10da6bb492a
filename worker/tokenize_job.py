"""Tokenizing a submission's test inputs in a child process: bounded, holding nothing.

A tokenizer.json is the submitter's (or the registry's) data, and its regexes run in
Oniguruma: one can backtrack for minutes or panic. So the trusted worker never tokenizes in
its own process, and never inside a database transaction: it reads the texts, ends the
transaction, and runs `python -m worker.tokenize_job DIR` under prlimit (address space, CPU
time) with a wall-clock timeout and no `PARETOBOARD_` variables (no database URL, no broker).
The child reads `DIR/request.json` and writes `DIR/out.npz` (token ids, flat, plus lengths and
first-segment lengths), or `DIR/error.json`. A slow, crashing or memory-hungry tokenizer fails
its own submission with `TokenizerError`, naming the file; nothing else waits on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.settings import REPO_ROOT
from core.submissions.states import Fault

REQUEST = "request.json"
OUTPUT = "out.npz"
ERROR = "error.json"
CPU_SLACK_SECONDS = 5  # the CPU limit backs the wall-clock one up (rayon threads share it)


@dataclass
class TaskInputs:
    ids: list[list[int]]
    lengths: list[int]
    first_segments: list[int] | None


@dataclass(frozen=True)
class TokenizeRequest:
    """What to tokenize: one tokenizer file, the public test texts of each task."""

    tokenizer: Path
    label: str  # how messages name it: "the uploaded tokenizer file 'tok.json'"
    uploaded: bool  # the submitter's file (a failure is theirs) or a registered one (ours)
    texts: dict[int, list[tuple[str, ...]]]  # task id -> texts in index order
    task_names: dict[int, str]


class TokenizerError(Exception):
    """The tokenizer could not tokenize the inputs: `message` for the submitter, `fault`."""

    def __init__(self, message: str, *, fault: Fault, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fault = fault
        self.detail = detail


def tokenize(
    request: TokenizeRequest, *, max_tokens: int, seconds: float, memory_bytes: int
) -> dict[int, TaskInputs]:
    """Token ids per task from a bounded child process (raises TokenizerError)."""
    if not request.texts:
        return {}
    work = Path(tempfile.mkdtemp(prefix="paretoboard-tok-"))
    try:
        (work / REQUEST).write_text(
            json.dumps(
                {
                    "tokenizer": str(request.tokenizer),
                    "max_tokens": max_tokens,
                    "tasks": {str(k): v for k, v in request.texts.items()},
                }
            )
        )
        argv = [
            "prlimit",
            f"--as={memory_bytes}",
            f"--cpu={int(seconds) + CPU_SLACK_SECONDS}",
            "--core=0",
            sys.executable,
            "-m",
            "worker.tokenize_job",
            str(work),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["RUST_BACKTRACE"] = "0"
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                timeout=seconds,
                cwd=REPO_ROOT,
                env=env,
                check=False,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise TokenizerError(
                f"Tokenizing the test inputs with {request.label} took longer than the limit of "
                f"{seconds:g} s; check its normalizer and pre-tokenizer patterns for heavy "
                "backtracking",
                fault=_fault(request),
            ) from exc
        return _read_output(request, work, done, memory_bytes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fault(request: TokenizeRequest) -> Fault:
    return Fault.USER if request.uploaded else Fault.SERVICE


def _read_output(
    request: TokenizeRequest,
    work: Path,
    done: subprocess.CompletedProcess[bytes],
    memory_bytes: int,
) -> dict[int, TaskInputs]:
    stderr = done.stderr.decode("utf-8", "replace")[-4000:]
    if (work / ERROR).is_file():
        error = json.loads((work / ERROR).read_text())
        task = request.task_names.get(int(error.get("task") or 0), "")
        on = f" on the {task} test inputs" if task else ""
        label = request.label[:1].upper() + request.label[1:]
        raise TokenizerError(
            f"{label} failed{on}: {str(error.get('message', ''))[:500]}",
            fault=_fault(request),
            detail=stderr,
        )
    if done.returncode != 0 or not (work / OUTPUT).is_file():
        how = (
            f"was killed by signal {-done.returncode}"
            if done.returncode < 0
            else f"exited with code {done.returncode}"
        )
        raise TokenizerError(
            f"Tokenizing the test inputs with {request.label} {how} (the limits are "
            f"{memory_bytes / 2**30:.3g} GiB of memory and the time limit)",
            fault=_fault(request),
            detail=stderr,
        )
    out: dict[int, TaskInputs] = {}
    with np.load(work / OUTPUT, allow_pickle=False) as arrays:
        for task_id in request.texts:
            flat = arrays[f"ids_{task_id}"]
            lengths = arrays[f"len_{task_id}"]
            bounds = np.concatenate([[0], np.cumsum(lengths)])
            flat_list = flat.tolist()
            ids = [flat_list[bounds[i] : bounds[i + 1]] for i in range(len(lengths))]
            key = f"first_{task_id}"
            first = arrays[key].tolist() if key in arrays.files else None
            out[task_id] = TaskInputs(ids=ids, lengths=lengths.tolist(), first_segments=first)
    return out


CHUNK = 64  # texts per batch: a tokenizer that panics stops at its first bad chunk


def _encode(tok: Any, texts: list[list[str]]) -> tuple[list[list[int]], list[int] | None]:
    pairs = bool(texts) and len(texts[0]) == 2
    ids: list[list[int]] = []
    first: list[int] = []
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        if pairs:  # ids and segments from one encoding
            encodings = tok.encode_batch([(a, b) for a, b in chunk])
            first.extend(e.type_ids.count(0) for e in encodings)
        else:
            encodings = tok.encode_batch([t[0] for t in chunk])
        ids.extend(e.ids for e in encodings)
    return ids, (first if pairs else None)


def main(work: Path) -> int:
    """The child: tokenize every task of DIR/request.json into DIR/out.npz."""
    from core.tokenizers import load_tokenizer

    request = json.loads((work / REQUEST).read_text())
    arrays: dict[str, np.ndarray] = {}
    task = ""
    try:
        tok = load_tokenizer(Path(request["tokenizer"]), max_tokens=int(request["max_tokens"]))
        for task, texts in request["tasks"].items():
            ids, first = _encode(tok, texts)
            arrays[f"len_{task}"] = np.array([len(x) for x in ids], dtype=np.int64)
            arrays[f"ids_{task}"] = np.array([i for row in ids for i in row] or [], dtype=np.int64)
            if first is not None:
                arrays[f"first_{task}"] = np.array(first, dtype=np.int64)
    except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException(BaseException)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        (work / ERROR).write_text(json.dumps({"task": task, "message": str(message)[:2000]}))
        return 2
    np.savez(work / OUTPUT, **arrays)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

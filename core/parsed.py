"""A stored prediction file's parsed form: parsed once, when it is uploaded, read by every later
stage (validating, scoring, counting, finishing, paired comparison, re-scoring).

The upload check parses the file (`core.predictions`) and `store_parsed` keeps the arrays next
to its blob, under the file's sha256, the task they were parsed for (manifest and row count)
and a format version. `read_parsed` returns that form, or parses the stored file when there is
none (submissions stored before it existed, a task whose manifest changed, an unreadable copy)
and keeps what it parsed for next time. Only trusted code writes these forms; they are read
with `allow_pickle=False` and checked against the task before use. A file that does not parse
never has one, so every refusal still comes from the parser, with its own messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
from typing import Final

import numpy as np
import numpy.typing as npt

from core.predictions import ModuleCall, ParsedPredictions, PredictionFormat, parse_predictions
from core.storage import BlobStore
from core.tasks.manifest import LabelKind, TaskManifest

FORMAT_VERSION: Final = 1


def task_digest(manifest: TaskManifest, n_rows: int) -> str:
    """What a parse depends on besides the file's bytes: the task's manifest and row count."""
    task = json.dumps(
        {"manifest": manifest.model_dump(mode="json"), "n_rows": n_rows}, sort_keys=True
    )
    return hashlib.sha256(task.encode()).hexdigest()[:24]


def parsed_key(sha256: str, digest: str) -> str:
    """The derived-data key of a file's parsed form for one task (`BlobStore.put_derived`)."""
    return f"{sha256}.parsed-v{FORMAT_VERSION}-{digest}.npz"


def encode_parsed(parsed: ParsedPredictions) -> bytes:
    """The parsed arrays as compressed .npz bytes (no pickle): module paths as a table of the
    distinct paths (JSON) and one index per row."""
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "format": np.array(parsed.format.value),
        "labels": np.asarray(parsed.labels),
    }
    if parsed.exit_layers is not None:
        arrays["exit_layers"] = np.asarray(parsed.exit_layers, dtype=np.int64)
    if parsed.modules is not None:
        table: dict[tuple[ModuleCall, ...], int] = {}
        # The parser hands out one tuple object per distinct raw path (its cache): look a row's
        # path up by identity first, and hash its calls only for a path object not seen yet.
        by_id: dict[int, int] = {}
        index = np.empty(len(parsed.modules), dtype=np.int64)
        for row, path in enumerate(parsed.modules):
            k = by_id.get(id(path))
            if k is None:
                k = by_id[id(path)] = table.setdefault(path, len(table))
            index[row] = k
        paths = [[[call.name, list(call.shape)] for call in path] for path in table]
        arrays["module_index"] = index
        arrays["module_paths"] = np.array(json.dumps(paths, separators=(",", ":")))
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def decode_parsed(
    data: bytes, *, manifest: TaskManifest, n_rows: int, file_name: str
) -> ParsedPredictions:
    """Inverse of `encode_parsed`, checked against the task (ValueError when it does not fit)."""
    try:
        return _decode(data, manifest=manifest, n_rows=n_rows, file_name=file_name)
    except (OSError, EOFError, KeyError, IndexError, TypeError, zipfile.BadZipFile) as exc:
        raise ValueError(f"unreadable parsed form: {exc!r}") from exc


def _decode(
    data: bytes, *, manifest: TaskManifest, n_rows: int, file_name: str
) -> ParsedPredictions:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        found = {name: npz[name] for name in npz.files}
    if int(found.get("version", np.array(-1))) != FORMAT_VERSION:
        raise ValueError("parsed form of another version")
    fmt = PredictionFormat(str(found["format"]))
    labels = found["labels"]
    regression = manifest.label_kind is LabelKind.REGRESSION
    if labels.shape != (n_rows,) or labels.dtype != (np.float64 if regression else np.int64):
        raise ValueError("parsed labels do not fit the task")
    if (
        not regression
        and labels.size
        and not 0 <= int(labels.min()) <= int(labels.max()) < len(manifest.labels)
    ):
        raise ValueError("parsed labels outside the task's labels")
    exit_layers = found.get("exit_layers")
    if (exit_layers is not None) != (fmt is PredictionFormat.EXIT_LAYER) or (
        exit_layers is not None and exit_layers.shape != (n_rows,)
    ):
        raise ValueError("parsed exit layers do not fit the format")
    modules: tuple[tuple[ModuleCall, ...], ...] | None = None
    if fmt is PredictionFormat.ELUE:
        table = tuple(
            tuple(
                ModuleCall(name=str(name), shape=tuple(int(d) for d in shape)) for name, shape in p
            )
            for p in json.loads(str(found["module_paths"]))
        )
        index = found["module_index"]
        if index.shape != (n_rows,):
            raise ValueError("parsed module paths do not fit the task")
        modules = tuple(table[int(i)] for i in index)
    for array in (labels, exit_layers):
        if array is not None:
            array.flags.writeable = False
    return ParsedPredictions(
        file=file_name, format=fmt, labels=labels, modules=modules, exit_layers=exit_layers
    )


def store_parsed(store: BlobStore, sha256: str, digest: str, form: bytes) -> None:
    """Keep a file's parsed form (`encode_parsed`) for the task of `digest` next to its blob.

    A disk too full for it fails nothing: the form is only a saving, `read_parsed` parses.
    """
    with contextlib.suppress(OSError):
        store.put_derived(parsed_key(sha256, digest), form)


def read_parsed(
    store: BlobStore,
    sha256: str,
    *,
    manifest: TaskManifest,
    n_rows: int,
    file_name: str,
    max_bytes: int,
    max_problems: int,
) -> ParsedPredictions:
    """The stored file's parsed form; parsed from the blob (and kept) when there is none.

    Raises what parsing raises (`PredictionFileError`, with the parser's messages) and `OSError`
    when the blob itself is gone, as reading it would.
    """
    size = store.size(sha256)  # the blob must still be here: OSError (BlobNotFoundError) if not
    digest = task_digest(manifest, n_rows)
    if size <= max_bytes:  # a lowered limit refuses the file again, with the parser's message
        form = store.read_derived(parsed_key(sha256, digest))
        if form is not None:
            with contextlib.suppress(ValueError):
                return decode_parsed(form, manifest=manifest, n_rows=n_rows, file_name=file_name)
    parsed = parse_predictions(
        store.read_bytes(sha256),
        manifest=manifest,
        n_rows=n_rows,
        file_name=file_name,
        max_bytes=max_bytes,
        max_problems=max_problems,
    )
    store_parsed(store, sha256, digest, encode_parsed(parsed))
    return parsed

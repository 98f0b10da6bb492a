"""Prediction files sent as one zip archive: every entry is checked before anything is extracted.

Rules (each refused entry is named, with the reason):
- at most `zip_max_entries` entries, at most `zip_max_uncompressed_bytes` declared in total;
- files at the top level, in one folder per task (ELUE's layout: `SST-2/3.tsv`), or either of
  these inside one top-level folder (what `zip -r preds.zip preds/` makes); anything deeper, or
  task folders inside two different top-level folders, is refused (which folder names a task is
  decided with the task list, `core.submissions.files.resolve_prediction_names`);
- no absolute paths, no `..`, no drive letters; backslashes count as separators;
- regular files only (symbolic links and other special files are refused, read from the Unix mode
  in `external_attr`), not encrypted, stored or deflate/bzip2/lzma compressed;
- only `.tsv` entries and model files (`.py`, e.g. ELUE's `model_to_eval.py`, at most one per
  folder), each no larger than a prediction file may be, and at most one weights file
  (`.safetensors`, anywhere; at most `max_weights_bytes`, not counted in
  `zip_max_uncompressed_bytes`), each with a compression ratio (uncompressed / compressed) of at
  most `zip_max_ratio` for entries of 1 MiB or more;
- entry paths unique.
Extraction writes each accepted entry to a neutral name under `dest` (never the entry's name) and
stops at the declared size, so a lying header cannot write more than was checked.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import Problem
from core.settings import LimitsSettings
from core.storage import is_disk_full
from core.submissions.service import UploadedFile

_CHUNK = 1024 * 1024
RATIO_MIN_BYTES = 1024 * 1024  # smaller entries cannot hurt whatever their ratio
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass(frozen=True, slots=True)
class ZipEntry:
    info: zipfile.ZipInfo
    name: str  # path inside the archive (`SST-2.tsv`, `SST-2/3.tsv`, `preds/SST-2/3.tsv`)


MAX_DEPTH = 3  # <top-level folder>/<task folder>/<file>
_NESTED = "nested folder (at most <folder>/<TASK>/<file>)"


def is_model_name(name: str) -> bool:
    return name.lower().endswith(".py")


def is_weights_name(name: str) -> bool:
    return name.lower().endswith(".safetensors")


def is_zip_name(name: str) -> bool:
    return name.lower().endswith(".zip")


def _refused(zip_name: str, entry: str, why: str) -> Problem:
    return Problem(f"entry refused: {why}", file=f"{zip_name}:{entry}")


def _entry_problem(info: zipfile.ZipInfo, parts: list[str]) -> str | None:
    raw = info.filename
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        return "absolute path"
    if any(p == ".." for p in parts):
        return "parent path (..)"
    if info.flag_bits & 0x1:
        return "encrypted"
    mode = info.external_attr >> 16
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
    if info.compress_type not in _METHODS:
        return f"unsupported compression method {info.compress_type}"
    return None


def check_zip(
    path: Path, *, zip_name: str, limits: LimitsSettings
) -> tuple[list[ZipEntry], list[Problem]]:
    """The entries to extract, or every problem with the archive (then nothing is extracted)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        return [], [Problem(f"not a readable zip archive ({exc})", file=zip_name)]
    if len(infos) > limits.zip_max_entries:
        return [], [
            Problem(
                f"the archive has {len(infos)} entries, the limit is {limits.zip_max_entries}",
                file=zip_name,
            )
        ]
    problems: list[Problem] = []
    files: list[tuple[zipfile.ZipInfo, list[str]]] = []
    for info in infos:
        parts = [p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")]
        why = _entry_problem(info, parts)
        if why is None and not parts:
            why = "empty name"
        if why is not None:
            problems.append(_refused(zip_name, info.filename, why))
        elif info.is_dir() or info.filename.endswith("\\"):
            if len(parts) >= MAX_DEPTH:
                problems.append(_refused(zip_name, info.filename, _NESTED))
        elif len(parts) > MAX_DEPTH:
            problems.append(_refused(zip_name, info.filename, _NESTED))
        else:
            files.append((info, parts))
    if any(len(parts) == MAX_DEPTH for _, parts in files):
        tops = {parts[0] if len(parts) > 1 else "(top level)" for _, parts in files}
        if len(tops) > 1:
            problems.append(
                Problem(
                    "task folders must be at the top level or all inside one top-level folder; "
                    "found " + ", ".join(sorted(tops)),
                    file=zip_name,
                )
            )
    entries: list[ZipEntry] = []
    seen: set[str] = set()
    model_folders: dict[str, str] = {}
    weights: str | None = None
    total = 0
    for info, parts in files:
        name = "/".join(parts)
        folder = "/".join(parts[:-1])
        size = info.file_size
        limit = limits.max_weights_bytes if is_weights_name(name) else limits.prediction_file_bytes
        if not is_weights_name(name):
            total += size
        if is_weights_name(name) and weights is not None:
            why = f"a second weights file ({weights}): a submission has one"
        elif is_weights_name(name):
            weights = name
            why = None
        elif is_model_name(name) and folder in model_folders:
            why = f"a second model file in {folder or 'the top level'} ({model_folders[folder]})"
        elif is_model_name(name):
            model_folders[folder] = name
            why = None
        elif not name.lower().endswith(".tsv"):
            why = (
                "only .tsv prediction files, .py model files and one .safetensors weights file "
                "are accepted"
            )
        else:
            why = None
        if why is not None:
            pass
        elif name in seen:
            why = f"a second entry named {name}"
        elif size > limit:
            why = f"{size:,} bytes uncompressed, the limit is {limit:,}"
        elif size >= RATIO_MIN_BYTES and size > limits.zip_max_ratio * max(info.compress_size, 1):
            ratio = size / max(info.compress_size, 1)
            why = f"compression ratio {ratio:,.0f}:1 is above the limit of {limits.zip_max_ratio:,.0f}:1"
        else:
            seen.add(name)
            entries.append(ZipEntry(info, name))
            continue
        problems.append(_refused(zip_name, info.filename, why))
    if total > limits.zip_max_uncompressed_bytes:
        problems.append(
            Problem(
                f"the entries add up to {total:,} bytes uncompressed, the limit is "
                f"{limits.zip_max_uncompressed_bytes:,}",
                file=zip_name,
            )
        )
    tsv = [e for e in entries if not is_model_name(e.name) and not is_weights_name(e.name)]
    if not tsv and not problems:
        problems.append(Problem("the archive holds no .tsv files", file=zip_name))
    return (entries if not problems else []), problems


def extract_zip(
    path: Path, dest: Path, *, zip_name: str, limits: LimitsSettings
) -> tuple[list[UploadedFile], list[Problem]]:
    """Check the archive, then extract its entries to neutral names under `dest`.

    The files come back in archive order, each named by its path inside the archive; model and
    weights files (`is_model_name`, `is_weights_name`) among them are the caller's to separate.
    """
    entries, problems = check_zip(path, zip_name=zip_name, limits=limits)
    if problems:
        return [], problems
    out: list[UploadedFile] = []
    with zipfile.ZipFile(path) as zf:
        for i, entry in enumerate(entries):
            suffix = (
                ".py"
                if is_model_name(entry.name)
                else ".safetensors"
                if is_weights_name(entry.name)
                else ".tsv"
            )
            target = dest / f"zip-{i}{suffix}"
            written = 0
            try:
                with zf.open(entry.info) as src, target.open("wb") as dst:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > entry.info.file_size:  # never more than was checked
                            raise zipfile.BadZipFile("entry is longer than its header says")
                        dst.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                if is_disk_full(exc):
                    raise  # the service's disk, not the archive: 507
                problems.append(_refused(zip_name, entry.info.filename, f"unreadable ({exc})"))
                continue
            out.append(UploadedFile(entry.name, target))
    return (out if not problems else []), problems

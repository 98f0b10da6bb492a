"""Receiving a submission's multipart upload: streamed to disk, staged under neutral names.

The body is parsed by `web.forms.read_form`, the one parser with the one set of limits for
every upload path, whether the caller sent a token or a cookie (whose CSRF check reads the same
parse). Each file is then copied in 1 MiB chunks into a private staging folder under the data
folder (`core.leftovers.staging_folder`), named by its position (`0`, `1`, ...; a zip's entries
`zip-0.tsv`, ...): user-supplied names are only shown, never used as paths. The folder is
removed when the request ends, whatever happened, and at the next start if the process was
killed. A full disk on the way answers 507 with nothing kept.
"""

from __future__ import annotations

import filecmp
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from core.errors import STORAGE_FULL_MESSAGE, Problem, StorageFullError
from core.leftovers import staging_folder
from core.models import Visibility
from core.settings import Settings
from core.storage import is_disk_full
from core.submissions.archive import extract_zip, is_model_name, is_weights_name, is_zip_name
from core.submissions.service import SubmissionDraft, UploadedFile
from core.text import has_control
from web.forms import FILE_FIELDS, TEXT_FIELDS, close_form, read_form

URL_MAX = 500
_CHUNK = 1024 * 1024
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")

# OpenAPI description of the multipart body (the route parses it itself, after authentication).
MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["predictions"],
                    "properties": {
                        "model": {
                            "type": "string",
                            "format": "binary",
                            "description": "the model file (.py) defining `entire_model` "
                            "(optional when the zip holds model_to_eval.py)",
                        },
                        "predictions": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "files named <TASK>.tsv, <TASK>.<point>.tsv or "
                            "ElasticBERT's <TASK>_<point>.tsv with "
                            "<TASK>_infer_exit_layer_<point>.tsv, or one .zip of them (at the "
                            "top level or one folder per task: SST-2/3.tsv, optionally with "
                            "the task's model_to_eval.py)",
                        },
                        "tokenizer": {
                            "type": "string",
                            "format": "binary",
                            "description": "a `tokenizers` JSON file (or give tokenizer_name)",
                        },
                        "weights": {
                            "type": "string",
                            "format": "binary",
                            "description": "the model's weights: one safetensors file (no "
                            "pickles) whose tensors are the model's parameters and buffers, "
                            "at most limits.max_weights_bytes (or a .safetensors in the zip)",
                        },
                        "tokenizer_name": {"type": "string"},
                        "name": {"type": "string", "maxLength": 200},
                        "description": {"type": "string"},
                        "paper_url": {"type": "string"},
                        "code_url": {"type": "string"},
                        "visibility": {"type": "string", "enum": ["public", "private"]},
                        "costs": {
                            "type": "string",
                            "description": "ELUE's Type 1, instead of `model`: a JSON list of "
                            '{"file", "flops", "flops_unit" (FLOPs|MFLOPs|GFLOPs), "params", '
                            '"params_unit" (params|M)}, one per prediction file: self-reported '
                            "FLOPs per sample and parameters (docs/ranking.md)",
                        },
                        "costs_table": {
                            "type": "string",
                            "description": "the same as a table, `FILE FLOPS PARAMS` per line, "
                            "in costs_flops_unit and costs_params_unit (the web form's)",
                        },
                        "costs_flops_unit": {
                            "type": "string",
                            "enum": ["FLOPs", "MFLOPs", "GFLOPs"],
                        },
                        "costs_params_unit": {"type": "string", "enum": ["params", "M"]},
                    },
                }
            }
        },
    }
}


@dataclass
class StagedUpload:
    """The request's files on local disk, its text fields, and the problems found so far."""

    folder: Path
    fields: dict[str, str] = field(default_factory=dict)
    model: UploadedFile | None = None
    tokenizer: UploadedFile | None = None
    weights: UploadedFile | None = None
    predictions: list[UploadedFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    predictions_refused: bool = False  # prediction files came but were refused (problems say why)


def display_name(filename: str | None) -> str:
    """The user's file name for display: last path component, no control characters."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return _UNSAFE.sub("", base).strip()[:255]


def _copy(upload: UploadFile, target: Path) -> None:
    upload.file.seek(0)
    with target.open("wb") as out:
        shutil.copyfileobj(upload.file, out, _CHUNK)


def _stage(form: FormData, folder: Path, settings: Settings) -> StagedUpload:
    staged = StagedUpload(folder)
    counter = 0
    for key, value in form.multi_items():
        if key in FILE_FIELDS:
            if not isinstance(value, UploadFile):
                staged.problems.append(Problem("expected a file upload, got text", column=key))
                continue
            name = display_name(value.filename)
            if not value.filename and not value.size:
                continue  # what a browser sends for a file input left empty (the no-JS form)
            if not name:
                staged.problems.append(Problem("the uploaded file has no name", column=key))
                continue
            target = folder / str(counter)
            counter += 1
            _copy(value, target)
            uploaded = UploadedFile(name, target)
            if key == "predictions":
                staged.predictions.append(uploaded)
            elif getattr(staged, key) is not None:
                staged.problems.append(Problem(f"send one {key} file, not several", column=key))
            else:
                setattr(staged, key, uploaded)
        elif key in TEXT_FIELDS:
            if not isinstance(value, str):
                staged.problems.append(Problem("expected a text field, got a file", column=key))
            elif key in staged.fields:
                staged.problems.append(Problem("given more than once", column=key))
            else:
                staged.fields[key] = value
        else:
            staged.problems.append(
                Problem(
                    f"unknown field {display_name(key)[:64]!r} (expected one of "
                    f"{', '.join(FILE_FIELDS + TEXT_FIELDS[:-1])})",
                    column=display_name(key)[:64] or "body",
                )
            )
    zips = [p for p in staged.predictions if is_zip_name(p.name)]
    if zips:
        staged.predictions_refused = True  # until the archive is accepted
        if len(staged.predictions) > 1:
            staged.problems.append(
                Problem(
                    "send either .tsv prediction files or one .zip of them, not both or several",
                    column="predictions",
                )
            )
            # The .tsv files sent alongside are still checked, so their problems show too.
            staged.predictions = [p for p in staged.predictions if not is_zip_name(p.name)]
        else:
            archive = staged.predictions[0]
            unpacked = folder / "unzipped"
            unpacked.mkdir()
            files, problems = extract_zip(
                archive.path, unpacked, zip_name=archive.name, limits=settings.limits
            )
            archive.path.unlink()
            staged.predictions = [
                f for f in files if not is_model_name(f.name) and not is_weights_name(f.name)
            ]
            staged.problems.extend(problems)
            staged.predictions_refused = bool(problems)
            _take_zip_models(staged, [f for f in files if is_model_name(f.name)], archive.name)
            _take_zip_weights(staged, [f for f in files if is_weights_name(f.name)], archive.name)
    if len(staged.predictions) > settings.limits.max_prediction_files:
        staged.problems.append(
            Problem(
                f"{len(staged.predictions)} prediction files, the limit is "
                f"{settings.limits.max_prediction_files}",
                column="predictions",
            )
        )
    return staged


def _take_zip_models(staged: StagedUpload, models: list[UploadedFile], zip_name: str) -> None:
    """ELUE's zip may hold a `model_to_eval.py` per task folder. A submission has one model for
    all its tasks, so they must be the same file (byte for byte), and the same as the model field
    when both are sent; the zip's model is used when the field is empty."""
    if not models:
        return
    first = models[0]
    data = first.path.read_bytes()
    differing = [m.name for m in models[1:] if m.path.read_bytes() != data]
    if differing:
        staged.problems.append(
            Problem(
                f"model files differ: {', '.join(differing)} not the same as {first.name}; a "
                "submission has one model for all its tasks, so every task folder's model file "
                "must be the same file (or send one model file); submit tasks with different "
                "models as separate submissions",
                file=zip_name,
                column="model",
            )
        )
        if staged.model is None:
            staged.model = UploadedFile(first.name, first.path)  # not "a model is required" too
        return
    if staged.model is not None:
        if staged.model.path.read_bytes() != data:
            staged.problems.append(
                Problem(
                    f"the model file {staged.model.name} and {first.name} in the zip differ: send "
                    "one model (leave the model field empty to use the zip's)",
                    file=zip_name,
                    column="model",
                )
            )
        return
    staged.model = UploadedFile(first.name, first.path)


def _take_zip_weights(staged: StagedUpload, weights: list[UploadedFile], zip_name: str) -> None:
    """A zip may hold the weights (one `.safetensors`, checked by `check_zip`); with the weights
    field sent too, they must be the same file."""
    if not weights:
        return
    inside = weights[0]
    if staged.weights is None:
        staged.weights = UploadedFile(inside.name, inside.path)
    elif not filecmp.cmp(staged.weights.path, inside.path, shallow=False):
        staged.problems.append(
            Problem(
                f"the weights file {staged.weights.name} and {inside.name} in the zip differ: "
                "send the weights once (leave the weights field empty to use the zip's)",
                file=zip_name,
                column="weights",
            )
        )


@asynccontextmanager
async def staged_upload(request: Request, settings: Settings) -> AsyncIterator[StagedUpload]:
    """Read the upload into a private staging folder, removed when the block ends (a folder
    left by a killed process is removed at the next start, `core.leftovers`). A full disk:
    507, nothing kept."""
    staging = staging_folder(settings.storage.data_dir / "staging")
    try:
        # made, locked and removed in a thread: none of it blocks the event loop
        folder = await run_in_threadpool(staging.__enter__)
        try:
            try:
                form = await read_form(request)
                staged = await run_in_threadpool(_stage, form, folder, settings)
            finally:
                await close_form(request)  # the spooled files go now, not at the request's end
            yield staged
        finally:
            await run_in_threadpool(staging.__exit__, None, None, None)
    except OSError as exc:
        if is_disk_full(exc):
            raise StorageFullError(STORAGE_FULL_MESSAGE) from exc
        raise


def draft_from(fields: dict[str, str], problems: list[Problem]) -> SubmissionDraft:
    """The submission's metadata from the text fields; bad values are added to `problems`."""
    visibility = Visibility.PUBLIC
    raw = fields.get("visibility", "").strip().lower()
    if raw:
        try:
            visibility = Visibility(raw)
        except ValueError:
            problems.append(Problem("must be public or private", column="visibility"))
    urls: dict[str, str | None] = {}
    for key in ("paper_url", "code_url"):
        value = fields.get(key, "").strip()
        if value and (len(value) > URL_MAX or not _URL.match(value) or has_control(value)):
            problems.append(
                Problem(f"expected an http(s) URL of at most {URL_MAX} characters", column=key)
            )
        urls[key] = value or None
    description = fields.get("description", "")
    if len(description) > 10_000:
        problems.append(Problem("at most 10,000 characters", column="description"))
    return SubmissionDraft(
        name=fields.get("name", ""),
        description=description,
        paper_url=urls["paper_url"],
        code_url=urls["code_url"],
        visibility=visibility,
        tokenizer_name=fields.get("tokenizer_name", "").strip() or None,
    )

"""Creating submissions: check everything that needs no user code, then store files and rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from core.errors import InvalidInputError, Problem
from core.models import (
    FileRole,
    Result,
    Submission,
    SubmissionFile,
    SubmissionKind,
    SubmissionState,
    SubmissionWeights,
    Visibility,
)
from core.parsed import encode_parsed, store_parsed, task_digest
from core.predictions import (
    ModuleCall,
    ParsedPredictions,
    PredictionFormat,
    parse_exit_layer_file,
    parse_prediction_file,
    write_with_exit_layers,
)
from core.settings import LimitsSettings
from core.storage import BlobStore
from core.submissions.files import (
    FileKind,
    NamedFile,
    check_model_source,
    resolve_prediction_names,
)
from core.submissions.names import name_conflict
from core.submissions.self_reported import SELF_REPORTED, PointCost, TypedCosts, match_costs
from core.submissions.state import set_state
from core.submissions.weights import WeightsManifest, check_weights_file
from core.tasks.names import TaskNames
from core.tasks.service import manifest_of
from core.text import name_problem, normalise_name, text_problem
from core.tokenizer_rules import check_tokenizer_file
from core.tokenizers import DEFAULT_TOKENIZER, load_tokenizer

TOKENIZER_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file already on local disk; `name` is the user's name for it (display only)."""

    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class SubmissionDraft:
    name: str
    description: str = ""
    paper_url: str | None = None
    code_url: str | None = None
    visibility: Visibility = Visibility.PUBLIC
    tokenizer_name: str | None = None


@dataclass(frozen=True, slots=True)
class CheckedPrediction:
    upload: UploadedFile
    task_id: int
    task_name: str
    point: str
    rows: int
    format: PredictionFormat
    # the distinct module paths (or exit layers) the file names, each with its first row, at
    # most MAX_PREFLIGHT_PATHS: the pre-flight check matches them against the captured graph
    paths: tuple[tuple[int, tuple[ModuleCall, ...]], ...] = ()
    exit_layers: tuple[tuple[int, int], ...] = ()  # (first row, exit layer)
    # the file as parsed, encoded (`core.parsed.encode_parsed`) and stored next to its blob when
    # the submission is stored, so that no later stage parses it again (a dry run encodes
    # nothing), and the task it was parsed for (`core.parsed.task_digest`)
    parsed: ParsedPredictions | None = field(default=None, repr=False, compare=False)
    task_digest: str = ""


@dataclass(frozen=True, slots=True)
class CheckedWeights:
    upload: UploadedFile
    manifest: WeightsManifest


@dataclass(slots=True)
class CheckedSubmission:
    predictions: list[CheckedPrediction] = field(default_factory=list)
    tokenizer_name: str | None = None
    weights: CheckedWeights | None = None
    # ELUE's Type 1: each point's self-reported cost, (task id, point) -> cost; None: measured
    costs: dict[tuple[int, str], PointCost] | None = None


MAX_PREFLIGHT_PATHS = 64  # distinct paths per file the pre-flight check matches


def _distinct_exits(layers: Sequence[int] | np.ndarray) -> tuple[tuple[int, int], ...]:
    """(first row, exit layer) of each distinct exit layer, at most MAX_PREFLIGHT_PATHS."""
    seen: dict[int, int] = {}
    for row, layer in enumerate(layers):
        if len(seen) >= MAX_PREFLIGHT_PATHS:
            break
        seen.setdefault(int(layer), row)
    return tuple((row, layer) for layer, row in seen.items())


def _size_problem(upload: UploadedFile, limit: int, what: str) -> Problem | None:
    size = upload.path.stat().st_size
    if size > limit:
        return Problem(f"{what} is {size:,} bytes, the limit is {limit:,}", file=upload.name)
    if size == 0:
        return Problem(f"{what} is empty", file=upload.name)
    return None


def check_submission(
    session: Session,
    *,
    owner_id: int | None,
    draft: SubmissionDraft,
    model: UploadedFile | None,
    predictions: Sequence[UploadedFile],
    tokenizer: UploadedFile | None,
    limits: LimitsSettings,
    tokenizers: dict[str, Path],
    weights: UploadedFile | None = None,
    require_name: bool = True,
    problems: list[Problem] | None = None,
    predictions_refused: bool = False,
    costs: TypedCosts | None = None,
) -> CheckedSubmission:
    """Every check that runs no user code; raises InvalidInputError listing all problems.

    `costs` (ELUE's Type 1): each prediction file's self-reported FLOPs and parameters instead
    of a model file (no rows: the caller already refused the costs it got).

    `problems` found by the caller (upload rules) are reported first, with these; a dry run
    (`require_name=False`) checks the name only when one is given. `predictions_refused`: the
    caller already refused the prediction files it got (e.g. a bad archive), so their absence is
    not reported again.
    """
    problems = list(problems or [])
    checked = CheckedSubmission()
    name = normalise_name(draft.name)
    if not name and not require_name:
        pass
    elif (problem := name_problem(name)) is not None:
        problems.append(Problem(f"name: {problem}", column="name"))
    elif not name or len(name) > 200:
        problems.append(Problem("name must be 1 to 200 characters", column="name"))
    elif (conflict := name_conflict(session, owner_id=owner_id, name=name)) is not None:
        problems.append(Problem(conflict, column="name"))
    if (problem := text_problem(draft.description, multiline=True)) is not None:
        problems.append(Problem(f"description: {problem}", column="description"))
    if draft.tokenizer_name and (problem := text_problem(draft.tokenizer_name)) is not None:
        problems.append(Problem(f"tokenizer_name: {problem}", column="tokenizer_name"))

    if costs is not None:
        for given, what in ((model, "model"), (tokenizer, "tokenizer"), (weights, "weights")):
            if given is not None:
                problems.append(
                    Problem(
                        f"self-reported costs come without a {what} file: either upload the "
                        "model file (the platform counts its FLOPs and parameters) or type the "
                        "costs in, not both",
                        column=what,
                    )
                )
    elif model is None:
        problems.append(Problem("a model file (.py) is required", column="model"))
    elif (p := _size_problem(model, limits.model_file_bytes, "model file")) is not None:
        problems.append(p)
    else:
        problems.extend(check_model_source(model.path.read_bytes(), model.name))

    if tokenizer is not None and draft.tokenizer_name:
        problems.append(
            Problem("give either a tokenizer file or tokenizer_name, not both", column="tokenizer")
        )
    elif tokenizer is not None:
        if (p := _size_problem(tokenizer, TOKENIZER_FILE_BYTES, "tokenizer file")) is not None:
            problems.append(p)
        elif refused := check_tokenizer_file(tokenizer.path, tokenizer.name):
            problems.extend(refused)  # checked before the library compiles any of its patterns
        else:
            try:
                load_tokenizer(
                    tokenizer.path, max_tokens=limits.max_tokens, file_name=tokenizer.name
                )
            except InvalidInputError as exc:
                problems.extend(exc.problems)
    elif costs is None:
        wanted = draft.tokenizer_name or DEFAULT_TOKENIZER
        if wanted not in tokenizers:
            problems.append(
                Problem(
                    f"unknown tokenizer {wanted!r}; registered: {', '.join(sorted(tokenizers)) or 'none'}",
                    column="tokenizer_name",
                )
            )
        checked.tokenizer_name = wanted

    if weights is not None:
        found = check_weights_file(
            weights.path,
            file=weights.name,
            max_bytes=limits.max_weights_bytes,
            max_tensors=limits.max_weights_tensors,
        )
        if isinstance(found, list):
            problems.extend(found)
        else:
            checked.weights = CheckedWeights(weights, found)

    if not predictions and not predictions_refused:
        problems.append(Problem("at least one prediction file is required", column="predictions"))
    _check_predictions(session, predictions, limits, checked, problems)
    if costs is not None:
        checked.costs = {}
        if costs.rows:
            checked.costs = match_costs(
                costs.rows,
                [(p.task_id, p.point, p.upload.name) for p in checked.predictions],
                TaskNames.load(session),
                problems,
                lines=costs.lines,
            )

    if problems:
        raise InvalidInputError(
            f"The submission has {len(problems)} problem(s); nothing was stored", problems
        )
    return checked


def create_submission(
    session: Session,
    store: BlobStore,
    *,
    owner_id: int | None,
    draft: SubmissionDraft,
    model: UploadedFile,
    predictions: Sequence[UploadedFile],
    tokenizer: UploadedFile | None = None,
    weights: UploadedFile | None = None,
    limits: LimitsSettings,
    tokenizers: dict[str, Path],
) -> Submission:
    """Check, then store the files content-addressed and create a queued submission (flushed)."""
    checked = check_submission(
        session,
        owner_id=owner_id,
        draft=draft,
        model=model,
        predictions=predictions,
        tokenizer=tokenizer,
        limits=limits,
        tokenizers=tokenizers,
        weights=weights,
    )
    return store_submission(
        session,
        store,
        owner_id=owner_id,
        draft=draft,
        checked=checked,
        model=model,
        tokenizer=tokenizer,
    )


def store_submission(
    session: Session,
    store: BlobStore,
    *,
    owner_id: int | None,
    draft: SubmissionDraft,
    checked: CheckedSubmission,
    model: UploadedFile | None,
    tokenizer: UploadedFile | None,
) -> Submission:
    """Store checked files content-addressed and create the queued submission (flushed).

    Type 1 (`checked.costs`): a self-reported submission without a model file whose results
    are created here with the typed-in costs; the scoring stage fills in their performance.
    """
    self_reported = checked.costs is not None
    submission = Submission(
        owner_id=owner_id,
        name=normalise_name(draft.name),
        description=draft.description,
        paper_url=draft.paper_url,
        code_url=draft.code_url,
        kind=SubmissionKind.SELF_REPORTED if self_reported else SubmissionKind.MEASURED,
        visibility=draft.visibility,
        tokenizer_name=checked.tokenizer_name,
    )
    set_state(submission, SubmissionState.QUEUED, "Waiting for a worker")
    session.add(submission)
    session.flush()

    def add(
        role: FileRole, upload: UploadedFile, task_id: int | None = None, point: str | None = None
    ) -> SubmissionFile:
        sha, size = store.put_file(upload.path)  # streamed in chunks, hashed on the way
        row = SubmissionFile(
            submission_id=submission.id,
            role=role,
            original_name=upload.name[:255],
            sha256=sha,
            size=size,
            task_id=task_id,
            point=point,
        )
        session.add(row)
        return row

    if model is not None:
        add(FileRole.MODEL, model)
    if tokenizer is not None:
        add(FileRole.TOKENIZER, tokenizer)
    for p in checked.predictions:
        row = add(FileRole.PREDICTIONS, p.upload, p.task_id, p.point)
        if p.parsed is not None:
            store_parsed(store, row.sha256, p.task_digest, encode_parsed(p.parsed))
        if checked.costs is not None:
            cost = checked.costs[(p.task_id, p.point)]
            session.flush()
            session.add(
                Result(
                    submission_id=submission.id,
                    task_id=p.task_id,
                    file_id=row.id,
                    point=p.point,
                    performance=None,
                    metrics={},
                    cost_status=SELF_REPORTED,
                    flops_mean=cost.flops,
                    macs_mean=cost.flops / 2,
                    params=cost.params,
                )
            )
    if checked.weights is not None:
        row = add(FileRole.WEIGHTS, checked.weights.upload)
        session.flush()
        session.add(weights_listing(row, checked.weights.manifest))
    session.flush()
    return submission


def weights_listing(file: SubmissionFile, manifest: WeightsManifest) -> SubmissionWeights:
    """The `submission_weights` row of a stored weights file (flushed, so it has an id)."""
    return SubmissionWeights(
        file_id=file.id,
        submission_id=file.submission_id,
        sha256=file.sha256,
        size=file.size,
        tensor_count=manifest.tensor_count,
        element_count=manifest.element_count,
        manifest=manifest.to_json(),
        metadata_=manifest.metadata,
    )


def _check_predictions(
    session: Session,
    predictions: Sequence[UploadedFile],
    limits: LimitsSettings,
    checked: CheckedSubmission,
    problems: list[Problem],
) -> None:
    """Name, pair and parse every prediction file; ElasticBERT's pairs are joined into one
    EXIT_LAYER file written next to the prediction file (in the caller's staging folder)."""
    named = resolve_prediction_names([u.name for u in predictions], TaskNames.load(session))
    groups: dict[tuple[int, str], dict[FileKind, list[tuple[UploadedFile, NamedFile]]]] = {}
    for upload, name in zip(predictions, named, strict=True):
        if isinstance(name, Problem):
            problems.append(name)
            continue
        kinds = groups.setdefault((name.task.id, name.point), {})
        same = kinds.setdefault(name.kind, [])
        if same:
            problems.append(
                Problem(f"same task and point as {same[0][1].display}", file=name.display)
            )
            continue
        same.append((upload, name))
    for kinds in groups.values():
        preds = kinds.get(FileKind.PREDICTIONS, [])
        exits = kinds.get(FileKind.EXIT_LAYERS, [])
        if exits and not preds:
            upload, name = exits[0]
            problems.append(
                Problem(
                    f"exit-layer file without its prediction file: expected {name.partner} "
                    f"(task {name.task.name}, point {name.point}) next to it",
                    file=name.display,
                )
            )
            continue
        if not preds:
            continue
        upload, name = preds[0]
        task = name.task
        manifest = manifest_of(task)
        try:
            parsed = parse_prediction_file(
                upload.path,
                manifest=manifest,
                n_rows=task.test_size,
                file_name=name.display,
                max_bytes=limits.prediction_file_bytes,
                max_problems=limits.max_problems,
            )
        except InvalidInputError as exc:
            problems.extend(exc.problems)
            parsed = None
        if (
            name.needs_partner
            and not exits
            and (parsed is None or parsed.format is PredictionFormat.SIMPLE)
        ):
            problems.append(
                Problem(
                    f"ElasticBERT prediction file without its exit-layer file: expected "
                    f"{name.partner} next to it (task {name.task.name}, point {name.point}); a "
                    f"model without early exits names its file {name.task.name}.{name.point}.tsv",
                    file=name.display,
                )
            )
            continue
        if exits:
            exit_upload, exit_name = exits[0]
            try:
                layers = parse_exit_layer_file(
                    exit_upload.path,
                    n_rows=task.test_size,
                    file_name=exit_name.display,
                    max_bytes=limits.prediction_file_bytes,
                    max_problems=limits.max_problems,
                )
            except InvalidInputError as exc:
                problems.extend(exc.problems)
                continue
            if parsed is None:
                continue
            if parsed.format is not PredictionFormat.SIMPLE:
                problems.append(
                    Problem(
                        f"has a {parsed.format.value} column and comes with the exit-layer file "
                        f"{exit_name.display}: give the exit layers once (drop the column or the "
                        "file)",
                        file=name.display,
                    )
                )
                continue
            joined = upload.path.with_name(upload.path.name + ".with-exit-layers.tsv")
            write_with_exit_layers(parsed, layers, manifest, joined)
            exit_rows = _distinct_exits(layers)
            upload = UploadedFile(f"{name.display} + {exit_name.display}", joined)
            fmt = PredictionFormat.EXIT_LAYER
            # what parsing the joined file gives (its labels are written to read back exactly)
            parsed = ParsedPredictions(
                file=upload.name, format=fmt, labels=parsed.labels, modules=None, exit_layers=layers
            )
        elif parsed is None:
            continue
        else:
            upload = UploadedFile(name.display, upload.path)
            fmt = parsed.format
            exit_rows = (
                _distinct_exits(parsed.exit_layers) if parsed.exit_layers is not None else ()
            )
        paths: dict[tuple[ModuleCall, ...], int] = {}
        for row, path in enumerate(parsed.modules or ()):
            if len(paths) >= MAX_PREFLIGHT_PATHS:
                break
            paths.setdefault(path, row)
        checked.predictions.append(
            CheckedPrediction(
                upload,
                task.id,
                task.name,
                name.point,
                parsed.n,
                fmt,
                paths=tuple((row, path) for path, row in paths.items()),
                exit_layers=exit_rows,
                parsed=parsed,
                task_digest=task_digest(manifest, task.test_size),
            )
        )

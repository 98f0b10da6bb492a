"""The published ElasticBERT-base baseline: one operator-owned self-reported entry, its points,
the FLOPs this service counts where the paper publishes none, and the tasks' baseline choice.

Only SST-2's FLOPs per point are published (read off ELUE's chart); for every other task the
paper gives the 6- and 12-layer scores with FLOPs averaged over all six tasks. Those points get
the FLOPs this service counts for an ElasticBERT-base-shaped model (`examples/elasticbert_base.py`)
on the task's real test inputs with every sample exiting after layer k (`worker/seed_costs.py`).
Each point says where its numbers come from in `Result.metrics` (string values only, so pages
do not mistake them for metric components):

| key | values |
|---|---|
| `performance_source` | `"published"` |
| `flops_source` | `"published"` (SST-2) / `"counted"` (this service) / `"pending"` (not yet) |
| `flops_note` | one sentence saying where the FLOPs come from (shown to people) |
| `params_source` | `"published"` (6 and 12 layers) / `"computed"` (3 and 4 layers) |
| `exit_layer` | the layer every sample exits after, e.g. `"12"` |

Counted points add `flops_model` (repository path), `flops_model_sha256`, `flops_tokenizer`,
`flops_test_sha256` (the task inputs counted: a re-import that changes them makes the next seed
count again) and `flops_method`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.cost_counter import COUNTER_VERSION
from core.costs import COUNTED, CostRows, CountedBy, write_result_costs
from core.errors import InvalidInputError, Problem
from core.leaderboard.service import listed_point, set_task_baseline
from core.models import (
    Result,
    Submission,
    SubmissionKind,
    SubmissionState,
    Task,
    Visibility,
)
from core.submissions.state import set_state

BASELINE_NAME = "ElasticBERT-base (published)"
PAPER_URL = "https://arxiv.org/abs/2110.07038"
CODE_URL = "https://github.com/fastnlp/ElasticBERT"
FLOPS_MODEL = "examples/elasticbert_base.py"
PENDING = "pending"

# Exact parameter counts of a k-layer BERT-base classifier (2 labels): embeddings, k layers,
# pooler and classifier (examples/elasticbert_base.py's modules). k = 6 and 12 are published
# (67M and 109M; 12 layers is exactly BERT-base's 109,483,778); 3 and 4 are not.
EMBEDDING_PARAMS = 23_837_184
LAYER_PARAMS = 7_087_872
HEAD_PARAMS = 592_130


def computed_params(layers: int) -> int:
    return EMBEDDING_PARAMS + layers * LAYER_PARAMS + HEAD_PARAMS


ABOUT = (
    "The ELUE baseline as published (Liu et al., 'Towards Efficient NLP: A Standard Evaluation "
    "and a Strong Baseline', arXiv 2110.07038): ElasticBERT-base, a 12-layer BERT-base with an "
    "exit head after every layer, used as a static k-layer model (k = 3, 4, 6, 12). The scores "
    "are the paper's (test sets, x100). FLOPs per sample, on every task (SST-2 included), are "
    "counted by this service, so that ELUE scores compare like with like: "
    "examples/elasticbert_base.py (ElasticBERT-base shape) on each task's real test inputs, "
    "tokenized with bert-base-uncased as for every submission, with every sample exiting after "
    "layer k, i.e. embeddings + k x (transformer layer + exit head), through the same sandboxed "
    "capture and trusted counter as measured submissions, in both conventions (FLOPs: "
    "everything computed; ELUE convention: products + LayerNorm). The FLOPs ELUE published for "
    "SST-2 (read off its chart) stay visible as a note on each point. Parameters: 109M (12 "
    "layers) and 67M (6 layers) as published; 3 and 4 layers computed (embeddings + k layers + "
    "pooler and classifier). Nothing else was measured."
)


@dataclass(frozen=True, slots=True)
class PublishedPoint:
    layers: int
    score: float
    mflops: float | None  # None: not published for this task

    @property
    def name(self) -> str:
        return f"{self.layers}L"


@dataclass(frozen=True, slots=True)
class PublishedBaseline:
    model: str
    params: Mapping[int, int]  # layers -> published parameter count
    tasks: Mapping[str, tuple[PublishedPoint, ...]]
    source: str = ""

    def params_of(self, layers: int) -> tuple[int, str]:
        """(parameter count, "published" | "computed")."""
        if layers in self.params:
            return self.params[layers], "published"
        return computed_params(layers), "computed"

    @property
    def model_params(self) -> int:
        return self.params_of(max(self.params))[0] if self.params else computed_params(12)


def read_baselines(path: Path) -> PublishedBaseline:
    """Parse `baselines.json` (see ../shared/data/elue/); InvalidInputError if malformed."""
    problems: list[Problem] = []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        params = {int(k): round(float(v) * 1_000_000) for k, v in raw["params_millions"].items()}
        tasks: dict[str, tuple[PublishedPoint, ...]] = {}
        for task, body in raw["tasks"].items():
            points = []
            for p in body["points"]:
                mflops = p.get("mflops")
                point = PublishedPoint(
                    layers=int(p["layers"]),
                    score=float(p["score"]),
                    mflops=None if mflops is None else float(mflops),
                )
                if point.layers < 1 or not math.isfinite(point.score):
                    problems.append(Problem(f"{task}: bad point {p!r}", file=path.name))
                points.append(point)
            tasks[str(task)] = tuple(points)
        model = str(raw.get("model", "ElasticBERT-base"))
        source = str(raw.get("_source", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(
            f"Cannot read the published baselines from {path}",
            [Problem(f"{type(exc).__name__}: {exc}", file=path.name)],
        ) from exc
    if problems:
        raise InvalidInputError(f"Cannot read the published baselines from {path}", problems)
    return PublishedBaseline(model=model, params=params, tasks=tasks, source=source)


@dataclass(frozen=True, slots=True)
class FlopsRequest:
    """Count FLOPs per sample of ElasticBERT-base on `task`'s test inputs, all exiting at k."""

    task: str
    exit_layer: int


@dataclass(frozen=True, slots=True)
class CountedFlops:
    """What the cost job returned for one `FlopsRequest` (per sample, test index order)."""

    per_sample_flops: Sequence[int]
    per_sample_flops_without_norm: Sequence[int]
    model_sha256: str
    tokenizer: str
    test_sha256: str
    method: str  # how the paths were counted, shown with the point
    device: str
    versions: Mapping[str, str]
    per_module: Mapping[str, float] = field(default_factory=dict)
    per_operator: Mapping[str, float] = field(default_factory=dict)
    uncounted: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    per_sample_flops_elue: Sequence[int] = ()
    counter_version: str | None = None
    rule_hash: str | None = None
    incomplete: Sequence[str] = ()
    disagrees: bool = False


@dataclass
class BaselineOutcome:
    submission_id: int | None = None
    created: bool = False
    points_created: list[str] = field(default_factory=list)  # "TASK/point"
    points_updated: list[str] = field(default_factory=list)
    skipped_tasks: list[str] = field(default_factory=list)  # published, not imported here
    to_count: list[FlopsRequest] = field(default_factory=list)
    designated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # tasks whose baseline is already another


def find_baseline(session: Session) -> Submission | None:
    return session.scalar(
        select(Submission).where(Submission.owner_id.is_(None), Submission.name == BASELINE_NAME)
    )


def _counted_note(layers: int) -> str:
    return (
        "counted by paretoboard on the real test inputs (ElasticBERT-base shape, all samples "
        f"exit at layer {layers})"
    )


def _published_metrics(point: PublishedPoint, params_source: str) -> dict[str, str]:
    metrics = {
        "performance_source": "published",
        "params_source": params_source,
        "exit_layer": str(point.layers),
    }
    metrics["flops_source"] = PENDING
    metrics["flops_note"] = (
        "being counted by paretoboard on the real test inputs (ElasticBERT-base shape, all "
        f"samples exit at layer {point.layers})"
    )
    if point.mflops is not None:
        metrics["published_flops_note"] = _published_note(point)
    return metrics


def _published_note(point: PublishedPoint) -> str:
    assert point.mflops is not None
    return (
        f"ELUE published {point.mflops:,.0f} MFLOPs per sample for this point (read off its "
        "SST-2 chart, approximate); the board uses the count made here, in both conventions"
    )


def ensure_baseline(session: Session, spec: PublishedBaseline) -> BaselineOutcome:
    """Create (or complete) the baseline entry and its points; idempotent (flushes).

    Existing points keep their FLOPs; a published score or FLOPs value that changed in the file
    is updated. Points whose FLOPs must be counted are listed in `to_count` (new ones, and
    counted ones whose task inputs changed since).
    """
    out = BaselineOutcome()
    tasks = {t.name: t for t in session.scalars(select(Task))}
    sub = find_baseline(session)
    if sub is not None and sub.kind is not SubmissionKind.SELF_REPORTED:
        raise InvalidInputError(
            f"An operator submission named {BASELINE_NAME!r} exists and is not self-reported",
            [Problem("rename or withdraw it, then seed again", column="name")],
        )
    if sub is None:
        sub = Submission(
            owner_id=None,
            name=BASELINE_NAME,
            description=ABOUT,
            paper_url=PAPER_URL,
            code_url=CODE_URL,
            kind=SubmissionKind.SELF_REPORTED,
            visibility=Visibility.PUBLIC,
            params=spec.model_params,
        )
        set_state(
            sub,
            SubmissionState.DONE,
            "Published scores (ELUE paper); FLOPs counted by this service on every task "
            "(the published SST-2 figures kept as notes)",
        )
        session.add(sub)
        session.flush()
        out.created = True
    out.submission_id = sub.id
    existing = {
        (r.task_id, r.point): r
        for r in session.scalars(select(Result).where(Result.submission_id == sub.id))
    }
    for task_name, points in spec.tasks.items():
        task = tasks.get(task_name)
        if task is None:
            out.skipped_tasks.append(task_name)
            continue
        for point in points:
            params, params_source = spec.params_of(point.layers)
            result = existing.get((task.id, point.name))
            label = f"{task.name}/{point.name}"
            if result is None:
                result = Result(
                    submission_id=sub.id,
                    task_id=task.id,
                    file_id=None,
                    point=point.name,
                    performance=point.score,
                    metrics=_published_metrics(point, params_source),
                    params=params,
                )
                _set_published_flops(result, point)
                session.add(result)
                out.points_created.append(label)
            elif _refresh_published(result, point, params):
                out.points_updated.append(label)
            if (
                result.cost_status != COUNTED
                or result.metrics.get("flops_test_sha256") != task.test_sha256
                or result.counter_version != COUNTER_VERSION
            ):
                out.to_count.append(FlopsRequest(task.name, point.layers))
    session.flush()
    return out


def _set_published_flops(result: Result, point: PublishedPoint) -> None:
    """A new point waits for its count; a published FLOPs value is kept as a note only."""
    result.cost_status = PENDING
    if point.mflops is not None:
        result.metrics = {**result.metrics, "published_flops_note": _published_note(point)}


def _refresh_published(result: Result, point: PublishedPoint, params: int) -> bool:
    """Apply a changed published value to an existing point; True if anything changed."""
    changed = False
    if result.performance != point.score:
        result.performance = point.score
        changed = True
    if result.params != params:
        result.params = params
        changed = True
    if point.mflops is not None and result.metrics.get("published_flops_note") != _published_note(
        point
    ):
        result.metrics = {**result.metrics, "published_flops_note": _published_note(point)}
        changed = True
    return changed


def apply_counted(
    session: Session, spec: PublishedBaseline, counted: Mapping[FlopsRequest, CountedFlops]
) -> list[str]:
    """Write counted FLOPs onto the baseline's points (summary, metrics, per-sample array)."""
    sub = find_baseline(session)
    if sub is None:
        return []
    done: list[str] = []
    for request, flops in counted.items():
        task = session.scalar(select(Task).where(Task.name == request.task))
        if task is None:
            continue
        point = f"{request.exit_layer}L"
        result = session.scalar(
            select(Result).where(
                Result.submission_id == sub.id, Result.task_id == task.id, Result.point == point
            )
        )
        if result is None:
            continue
        values = np.asarray(flops.per_sample_flops, dtype=np.int64)
        if values.size != task.test_size or values.size == 0:
            raise ValueError(
                f"{request.task}: counted {values.size} samples, the task has {task.test_size}"
            )
        without_norm = np.asarray(flops.per_sample_flops_without_norm, dtype=np.float64)
        write_result_costs(
            session,
            result,
            CostRows(
                flops=values,
                flops_elue=np.asarray(flops.per_sample_flops_elue, dtype=np.int64),
                per_operator=flops.per_operator,
                per_module=flops.per_module,
                uncounted=flops.uncounted,
                details={
                    "kind": "exit_layer",
                    "entry": f"baseline:{request.task}:{request.exit_layer}",
                    "flops_without_norm_mean": float(without_norm.mean())
                    if without_norm.size
                    else 0.0,
                    "method": flops.method,
                    **dict(flops.details),
                },
            ),
            counted=CountedBy(
                device=flops.device,
                versions=flops.versions,
                incomplete=bool(flops.incomplete),
                disagrees=flops.disagrees,
                counter_version=flops.counter_version,
                rule_hash=flops.rule_hash,
            ),
        )
        result.metrics = {
            **result.metrics,
            "flops_source": COUNTED,
            "flops_note": _counted_note(request.exit_layer),
            "flops_model": FLOPS_MODEL,
            "flops_model_sha256": flops.model_sha256,
            "flops_tokenizer": flops.tokenizer,
            "flops_test_sha256": flops.test_sha256,
            "flops_method": flops.method,
        }
        done.append(f"{task.name}/{point}")
    session.flush()
    return done


def designate_baselines(session: Session, out: BaselineOutcome | None = None) -> BaselineOutcome:
    """Make the entry the baseline of every task that has none and where it has a listed point."""
    out = out if out is not None else BaselineOutcome()
    sub = find_baseline(session)
    if sub is None:
        return out
    out.submission_id = sub.id
    for task in session.scalars(select(Task).order_by(Task.position, Task.name)):
        if task.baseline_submission_id == sub.id:
            continue
        if task.baseline_submission_id is not None:
            out.kept.append(task.name)
            continue
        has_point = session.scalar(
            select(Result.id)
            .where(Result.submission_id == sub.id, Result.task_id == task.id, listed_point())
            .limit(1)
        )
        if has_point is None:
            continue
        set_task_baseline(session, task_name=task.name, submission_id=sub.id)
        out.designated.append(task.name)
    return out

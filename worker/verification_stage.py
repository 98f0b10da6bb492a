"""Store a verification (score worker, trusted): compare outputs with the submitted predictions.

The cost worker's report carries each entry's output vectors, computed by the trusted runner
from the counted graph and the weights (`worker.verify`); here, with the predictions parsed
again from the stored files, each point gets its agreement and its status, and the submission
is verified when every point is (`worker.verification` has the conventions).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Result, Submission, Task
from core.predictions import ParsedPredictions
from core.settings import Settings
from core.storage import BlobStore
from core.tasks.service import manifest_of
from jobs.messages import VerifyOutput
from worker.counting_stage import CostJob, weights_files
from worker.scoring_stage import parse_stored, prediction_files
from worker.verification import (
    MAX_DIFFS_SHOWN,
    NOT_REPRODUCED,
    NOT_VERIFIED,
    REGRESSION_ABS_TOL,
    REGRESSION_REL_TOL,
    THRESHOLD,
    VERIFIED,
    compare,
    exit_agreement,
)


def _declared_exits(parsed: ParsedPredictions) -> list[int] | None:
    if parsed.exit_layers is not None:
        return [int(k) for k in parsed.exit_layers]
    if parsed.modules is not None:
        out = []
        for path in parsed.modules:
            found = re.search(r"(\d+)$", path[-1].name) if path else None
            if found is None:
                return None
            out.append(int(found.group(1)))
        return out
    return None


def _latency_summary(points: list[Any]) -> dict[str, Any] | None:
    if not points:
        return None
    medians = sorted(p.median_ms for p in points)
    return {
        "median_ms": medians[len(medians) // 2],
        "min_ms": min(p.min_ms for p in points),
        "max_ms": max(p.max_ms for p in points),
        "samples": [p.model_dump() for p in points],
    }


def store_verification(
    session: Session,
    store: BlobStore,
    submission: Submission,
    settings: Settings,
    job: CostJob,
    output: VerifyOutput | None,
) -> None:
    """Each point's verification from the report (no weights: nothing is verified)."""
    files = weights_files(session, submission)
    results = list(session.scalars(select(Result).where(Result.submission_id == submission.id)))
    if not files:
        submission.verified = False
        submission.verification = None
        for r in results:
            r.verify_status = r.verify_agreement = r.verification = None
        return
    tasks: dict[int, Task] = {t.id: t for t in session.scalars(select(Task))}
    summary: dict[str, Any] = {
        "weights": {
            (tasks[t].name if t is not None and t in tasks else "*"): f.sha256
            for t, f in files.items()
        },
        "threshold": THRESHOLD,
    }
    if output is None:
        summary |= {"status": NOT_VERIFIED, "error": "the cost worker did not run the weights"}
    elif not output.ok:
        summary |= {
            "status": NOT_VERIFIED,
            "problems": list(output.problems),
            "error": output.error
            or (
                f"the weights do not match entire_model's graph ({len(output.problems)} problem(s))"
            ),
        }
    else:
        summary |= {
            "status": "run",
            "hardware": output.hardware.model_dump() if output.hardware else None,
            "peak_memory_bytes": output.peak_memory_bytes,
            "seconds": output.seconds,
        }
    by_file = {(f.task_id, f.point or ""): (f, t) for f, t in prediction_files(session, submission)}
    all_verified = bool(results)
    for result in results:
        key = job.result_entry.get(result.id)
        entry = output.entries.get(key) if output is not None and key is not None else None
        details: dict[str, Any] = {"threshold": THRESHOLD}
        status = NOT_VERIFIED
        agreement: float | None = None
        if output is None or not output.ok:
            details["message"] = summary.get("error")
        elif entry is None:
            details["message"] = "this point was not run (no weights for its task)"
        elif entry.error is not None or entry.outputs is None:
            details["message"] = entry.error or "no outputs"
        else:
            file, task = by_file[(result.task_id, result.point)]
            manifest = manifest_of(task)
            # parsed once by build_job for this report; again only for a job built without it
            parsed = job.parsed.get(result.id) or parse_stored(store, file, task, settings)
            got = compare(entry.outputs, manifest, parsed.labels, list(entry.nonfinite))
            status, agreement = got.status, got.fraction
            details |= {
                "n": got.n,
                "agree": got.agree,
                "disagree": got.n - got.agree,
                "first_diffs": got.first_diffs[:MAX_DIFFS_SHOWN],
                "message": got.message,
            }
            if manifest.label_kind.value == "regression":
                details["tolerance"] = {"abs": REGRESSION_ABS_TOL, "rel": REGRESSION_REL_TOL}
            if entry.derived_exits is not None:
                declared = _declared_exits(parsed)
                if declared is not None:
                    policy = exit_agreement(declared, entry.derived_exits)
                    details["exit_policy"] = {
                        "n": policy.n,
                        "agree": policy.agree,
                        "first_diffs": policy.first_diffs,
                    }
                    if policy.status != VERIFIED and status == VERIFIED:
                        status = NOT_REPRODUCED
                        details["message"] = (
                            f"the model's own exit policy (its graph's exit output) sends "
                            f"{policy.n - policy.agree:,} of {policy.n:,} samples to another "
                            "exit than the file declares"
                        )
            latency = _latency_summary(list(entry.latency))
            if latency is not None:
                details["latency"] = latency
        result.verify_status = status
        result.verify_agreement = agreement
        result.verification = details
        all_verified = all_verified and status == VERIFIED
    if summary.get("status") == "run":
        summary["status"] = VERIFIED if all_verified else "partly_verified"
        if not any(r.verify_status == VERIFIED for r in results):
            summary["status"] = "not_reproduced"
    submission.verified = all_verified
    submission.verification = summary
    session.flush()

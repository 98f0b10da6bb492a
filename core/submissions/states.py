"""The words a submission's life is told in: its states, the stage a failure happened in, whose
fault it was, and the status of a result's costs; and the one table of allowed state changes.

Stored as the same strings as ever (`StrEnum` members are strings: the columns keep their
values, and comparisons with stored strings hold). `set_state` (core.submissions.state) checks
every change against `TRANSITIONS`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from core.errors import ConflictError


class SubmissionState(enum.StrEnum):
    QUEUED = "queued"
    VALIDATING = "validating"
    SCORING = "scoring"
    COUNTING = "counting"
    DONE = "done"
    FAILED = "failed"
    # Withdrawn by its owner: results and files gone, the row kept (quota, audit), shown to no one.
    WITHDRAWN = "withdrawn"

    @property
    def is_final(self) -> bool:
        return self in (SubmissionState.DONE, SubmissionState.FAILED, SubmissionState.WITHDRAWN)


class Stage(enum.StrEnum):
    """Where in the pipeline a submission failed (`submissions.failed_stage`): the active state
    it was in."""

    QUEUED = "queued"
    VALIDATING = "validating"
    SCORING = "scoring"
    COUNTING = "counting"


class Fault(enum.StrEnum):
    """Whose fault a failure was (`submissions.fault`); only user faults count against the quota."""

    USER = "user"  # their files or their code
    SERVICE = "service"  # infrastructure: a worker, the database, the sandbox


class CostStatus(enum.StrEnum):
    """Where a result's FLOPs and parameters come from (`results.cost_status`)."""

    PENDING = "pending"  # not counted yet
    COUNTED = "counted"  # counted by this service
    SELF_REPORTED = "self_reported"  # typed in from a paper (ELUE's Type 1)


_S = SubmissionState
# state -> the states it may move to. Any state but withdrawn may go back to the start (a re-run,
# the reconciler's re-send) or be withdrawn; a new row (no state yet) may start anywhere.
TRANSITIONS: Mapping[SubmissionState, frozenset[SubmissionState]] = {
    _S.QUEUED: frozenset({_S.QUEUED, _S.VALIDATING, _S.FAILED, _S.WITHDRAWN}),
    _S.VALIDATING: frozenset({_S.QUEUED, _S.SCORING, _S.FAILED, _S.WITHDRAWN}),
    # scoring ends in counting, or done at once for self-reported costs (nothing to count)
    _S.SCORING: frozenset({_S.QUEUED, _S.COUNTING, _S.DONE, _S.FAILED, _S.WITHDRAWN}),
    # counting -> counting: waiting for a place in the cost queue, or re-sent to a cost worker
    _S.COUNTING: frozenset({_S.QUEUED, _S.COUNTING, _S.DONE, _S.FAILED, _S.WITHDRAWN}),
    _S.DONE: frozenset({_S.QUEUED, _S.WITHDRAWN}),
    _S.FAILED: frozenset({_S.QUEUED, _S.WITHDRAWN}),
    _S.WITHDRAWN: frozenset(),
}


class IllegalTransitionError(ConflictError):
    """A state change that `TRANSITIONS` does not allow (a bug, never a user's error)."""

    code = "illegal_transition"


def can_move(old: SubmissionState | None, new: SubmissionState) -> bool:
    """Whether a submission in `old` (None: a new row) may move to `new`."""
    return old is None or new in TRANSITIONS[SubmissionState(old)]


def check_transition(old: SubmissionState | None, new: SubmissionState) -> None:
    """Raise `IllegalTransitionError` unless a submission in `old` may move to `new`."""
    if not can_move(old, new):
        raise IllegalTransitionError(f"a submission cannot go from {old} to {new}")

"""The one table of allowed submission state changes, and the enums stored as plain strings."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.models import Result, Submission
from core.submissions.state import queue_submission, set_state
from core.submissions.states import (
    TRANSITIONS,
    CostStatus,
    Fault,
    IllegalTransitionError,
    Stage,
    SubmissionState,
    can_move,
    check_transition,
)

S = SubmissionState
PIPELINE = [S.QUEUED, S.VALIDATING, S.SCORING, S.COUNTING, S.DONE]


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(SubmissionState)
    assert all(targets <= set(SubmissionState) for targets in TRANSITIONS.values())


@pytest.mark.parametrize(("old", "new"), list(itertools.pairwise(PIPELINE)))
def test_the_happy_path_is_allowed(old: SubmissionState, new: SubmissionState) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.SCORING, S.DONE),  # self-reported costs: nothing to count
        (S.COUNTING, S.COUNTING),  # waiting for a place in the cost queue, or re-sent
        (S.QUEUED, S.QUEUED),  # the reconciler's re-send
        (S.DONE, S.QUEUED),  # an administrator's re-run
        (S.FAILED, S.QUEUED),
        (S.COUNTING, S.FAILED),
        (S.VALIDATING, S.FAILED),
        (S.DONE, S.WITHDRAWN),
        (S.FAILED, S.WITHDRAWN),
        (None, S.DONE),  # a new row (a paper entry) may start anywhere
        (None, S.QUEUED),
    ],
)
def test_allowed_changes(old: SubmissionState | None, new: SubmissionState) -> None:
    assert can_move(old, new)
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.QUEUED, S.DONE),  # never done without being scored
        (S.QUEUED, S.COUNTING),
        (S.VALIDATING, S.COUNTING),
        (S.DONE, S.FAILED),  # a final state does not change but to start over
        (S.FAILED, S.DONE),
        (S.DONE, S.COUNTING),
        (S.WITHDRAWN, S.QUEUED),  # withdrawn is the end
        (S.WITHDRAWN, S.WITHDRAWN),
        (S.COUNTING, S.SCORING),  # no step back but to the start
    ],
)
def test_refused_changes(old: SubmissionState, new: SubmissionState) -> None:
    assert not can_move(old, new)
    with pytest.raises(IllegalTransitionError, match=f"from {old} to {new}"):
        check_transition(old, new)


def test_set_state_refuses_an_illegal_change_and_leaves_the_row_alone() -> None:
    sub = Submission(name="s")
    set_state(sub, S.DONE, "self-reported")
    timeline = list(sub.timeline)
    with pytest.raises(IllegalTransitionError):
        set_state(sub, S.FAILED, "late failure", fault=Fault.SERVICE)
    assert (sub.state, sub.fault, sub.timeline) == (S.DONE, None, timeline)
    queue_submission(sub, "re-run")  # a re-run is allowed
    assert sub.state is S.QUEUED


def test_enums_are_stored_as_the_same_strings(session: Session) -> None:
    sub = Submission(name="stored")
    session.add(sub)
    set_state(sub, S.FAILED, "broken", failed_stage=Stage.VALIDATING, fault=Fault.SERVICE)
    session.flush()
    row = session.execute(
        text("SELECT state, failed_stage, fault FROM submissions WHERE id = :id"), {"id": sub.id}
    ).one()
    assert tuple(row) == ("failed", "validating", "service")
    session.expire_all()
    again = session.scalars(select(Submission).where(Submission.id == sub.id)).one()
    assert again.fault is Fault.SERVICE
    assert again.fault == "service"  # and compares with the stored string
    assert Result.__table__.c.cost_status.default.arg == CostStatus.PENDING == "pending"  # type: ignore[attr-defined]

"""A submission's points read back in the order of its curve: by cost, not by name."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.models import Result
from core.submissions.queries import results_of
from tests.factories import make_submission, make_task


def test_points_come_back_cheapest_first(session: Session) -> None:
    task = make_task(session, "SST-2")
    sub = make_submission(session, "early-exit")
    for point, mflops in (("exit12", 4237.0), ("exit3", 1059.0), ("exit6", 2118.0), ("x", None)):
        session.add(
            Result(
                submission_id=sub.id,
                task_id=task.id,
                point=point,
                performance=85.0,
                flops_mean=None if mflops is None else mflops * 1e6,
                cost_status="counted" if mflops is not None else "pending",
            )
        )
    session.flush()
    (sst2,) = results_of(session, sub)
    assert [p.point for p in sst2.points] == ["exit3", "exit6", "exit12", "x"]

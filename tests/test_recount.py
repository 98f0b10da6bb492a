"""`paretoboard recount`: stale results are counted again, idempotently; uncountable ones flagged."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select, update

from core.arrays import pack_array, unpack_array
from core.cost_counter import COUNTER_VERSION
from core.db.session import transaction
from core.models import FileRole, Result, ResultCost, SubmissionFile, SubmissionState
from core.storage import LocalBlobStore
from tests.test_pipeline import MODELS, Env, _sst2_predictions, env  # noqa: F401
from worker import pipeline
from worker.recount import current_rule_hash, recount, stale_submissions


def _evaluated(env: Env, elue_dir: object, model: str) -> int:  # noqa: F811
    path, _gold, _preds = _sst2_predictions(env, elue_dir)  # type: ignore[arg-type]
    sid = env.submit(MODELS / model, {"SST-2.tsv": path}, name=model)
    pipeline.evaluate(env.engine, env.settings, sid)
    assert env.submission(sid).state is SubmissionState.DONE
    return sid


def _forge_old_count(env: Env, sid: int, flops: float) -> None:  # noqa: F811
    """What a result of the first counter looks like: no version, numbers from elsewhere."""
    with transaction(env.engine) as session:
        session.execute(
            update(Result)
            .where(Result.submission_id == sid)
            .values(counter_version=None, rule_hash=None, flops_mean=flops)
        )
        for cost in session.scalars(
            select(ResultCost).join(Result).where(Result.submission_id == sid)
        ):
            cost.flops = pack_array(np.full(cost.n, int(flops), dtype=np.int64))


def test_recount_restores_counts_and_is_idempotent(
    env: Env,  # noqa: F811
    elue_dir: object,
) -> None:
    sid = _evaluated(env, elue_dir, "tiny_static.py")
    with transaction(env.engine) as session:
        result = session.scalars(select(Result).where(Result.submission_id == sid)).one()
        honest_mean = result.flops_mean
        cost = session.get(ResultCost, result.id)
        assert cost is not None
        honest = unpack_array(cost.flops)
    assert stale_submissions(env.engine, current_rule_hash()) == []
    _forge_old_count(env, sid, 7.0)
    assert stale_submissions(env.engine, current_rule_hash()) == [sid]

    seen: list[tuple[int, int, int, str]] = []
    report = recount(env.engine, env.settings, progress=lambda *a: seen.append(a))
    assert report.recounted == [sid]
    assert report.failed == {}
    assert seen == [(1, 1, sid, "recounted (1 results)")]
    with transaction(env.engine) as session:
        result = session.scalars(select(Result).where(Result.submission_id == sid)).one()
        assert result.flops_mean == honest_mean
        assert (result.counter_version, result.rule_hash) == (COUNTER_VERSION, current_rule_hash())
        assert not result.cost_incomplete
        cost = session.get(ResultCost, result.id)
        assert cost is not None
        np.testing.assert_array_equal(unpack_array(cost.flops), honest)
        assert env.submission(sid).state is SubmissionState.DONE

    again = recount(env.engine, env.settings)
    assert again.recounted == []
    assert again.failed == {}


@pytest.mark.slow  # about 30 s; the default run keeps the suite under 15 min
def test_a_model_that_cannot_be_recounted_is_flagged_incomplete(
    env: Env,  # noqa: F811
    elue_dir: object,
) -> None:
    sid = _evaluated(env, elue_dir, "tiny_static.py")
    _forge_old_count(env, sid, 7.0)
    # The stored model file is now one the counter refuses (its cost depends on the content).
    store = LocalBlobStore(env.settings.storage.uploads_dir)
    sha, _size = store.put_bytes((MODELS / "cost" / "content_dependent.py").read_bytes())
    with transaction(env.engine) as session:
        session.execute(
            update(SubmissionFile)
            .where(SubmissionFile.submission_id == sid, SubmissionFile.role == FileRole.MODEL)
            .values(sha256=sha)
        )

    report = recount(env.engine, env.settings)
    assert list(report.failed) == [sid]
    assert "depends on the input values" in report.failed[sid]
    with transaction(env.engine) as session:
        result = session.scalars(select(Result).where(Result.submission_id == sid)).one()
        assert result.cost_incomplete  # the old number stays, as a lower bound, off the fronts
        assert result.flops_mean == 7.0
        cost = session.get(ResultCost, result.id)
        assert cost is not None
        assert "could not be recounted" in cost.details["recount_failed"]
    # Flagged once: not retried on every run.
    assert recount(env.engine, env.settings).failed == {}

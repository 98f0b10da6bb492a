"""ELUE's and ElasticBERT's file layouts, as researchers have them, built from the real task files
and sent through the API: ElasticBERT's prediction / exit-layer pairs, ELUE's zip with one folder
per task (and its model_to_eval.py), task names as ELUE spells them; and what is refused, clearly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from sqlalchemy import select

from core.db.session import make_engine
from core.models import Result, Submission, SubmissionFile, Task
from core.storage import LocalBlobStore
from core.tasks.names import TaskNames
from server import enqueue
from tests.conftest import ELUE_DIR
from tests.helpers import noisy_predictions, raw_gold
from tests.submission_helpers import TINY_MODEL, footprint, zip_bytes
from worker import pipeline

if TYPE_CHECKING:
    from tests.api_helpers import Api

pytest_plugins = ["tests.api_helpers"]

MODEL = TINY_MODEL.read_bytes()
KNOWN = (
    "known, in any case: SST-2 (sst-2, sst, sst2), SNLI, SciTail, MRPC, STS-B (sts-b, sts, stsb)"
)
Files = list[tuple[str, tuple[str, bytes]]]


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    sent: list[tuple[int, str]] = []

    def send(settings: Any, submission_id: int, job_id: str) -> bool:
        sent.append((submission_id, job_id))
        return True

    monkeypatch.setattr(enqueue, "send_score", send)
    return sent


def preds(task: str, seed: int = 1) -> tuple[bytes, list[str]]:
    """A prediction file for `task` with the real test set's row count (index, prediction)."""
    values = noisy_predictions(raw_gold(ELUE_DIR, task), task, seed=seed)
    text = "index\tprediction\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values))
    return text.encode(), values


def exits(task: str, seed: int = 1) -> tuple[bytes, list[int]]:
    """ElasticBERT's exit-layer file: `index exit_layer`, layers 1..12."""
    n = len(raw_gold(ELUE_DIR, task))
    layers = [int(x) for x in np.random.default_rng(seed).integers(1, 13, n)]
    text = "index\texit_layer\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(layers))
    return text.encode(), layers


def accuracy(task: str, values: list[str]) -> float:
    gold = raw_gold(ELUE_DIR, task)
    return float(np.mean([g == v for g, v in zip(gold, values, strict=True)]))


def submit(api: Api, parts: Files, name: str = "sub") -> Any:
    user = api.user()
    return api.client.post(
        "/api/v1/submissions", headers=user.headers, data={"name": name}, files=parts
    )


def problems(response: Any) -> list[tuple[str | None, str]]:
    assert response.status_code == 422, response.text
    return sorted((d["file"], d["problem"]) for d in response.json()["error"]["details"])


def score(api: Api, jobs: list[tuple[int, str]]) -> dict[tuple[str, str], Result]:
    """Run the scoring stage in process; the results by (task, point)."""
    (sid, job_id) = jobs[-1]
    engine = make_engine(api.settings.database_url)
    try:
        pipeline.run_scoring(engine, api.settings, sid, job_id)
    finally:
        engine.dispose()
    with api.db() as session:
        rows = session.execute(
            select(Task.name, Result)
            .join(Task, Task.id == Result.task_id)
            .where(Result.submission_id == sid)
        ).all()
        session.expunge_all()
        return {(task, r.point): r for task, r in rows}


def stored(api: Api, sid: int) -> dict[tuple[str, str | None], tuple[str, bytes]]:
    """The stored prediction files by (task, point): original name and content."""
    store = LocalBlobStore(api.settings.storage.uploads_dir)
    with api.db() as session:
        rows = session.execute(
            select(Task.name, SubmissionFile)
            .join(Task, Task.id == SubmissionFile.task_id)
            .where(SubmissionFile.submission_id == sid)
        ).all()
        return {
            (task, f.point): (f.original_name, store.path(f.sha256).read_bytes())
            for task, f in rows
        }


# ---------------------------------------------------------------------------------------------
# Accepted as they are


def test_elasticbert_pairs_are_one_point_each(seeded_api: Api, jobs: list[tuple[int, str]]) -> None:
    sst_03, sst_03_values = preds("SST-2", 1)
    sst_05, sst_05_values = preds("SST-2", 2)
    sts, _ = preds("STS-B", 3)
    sst_03_exits, sst_03_layers = exits("SST-2", 1)
    parts: Files = [
        ("model", ("model.py", MODEL)),
        ("predictions", ("sst-2_0.3.tsv", sst_03)),
        ("predictions", ("sst-2_infer_exit_layer_0.3.tsv", sst_03_exits)),
        ("predictions", ("SST2_0.5.tsv", sst_05)),  # any spelling of the task, either file
        ("predictions", ("sst_infer_exit_layer_0.5.tsv", exits("SST-2", 2)[0])),
        ("predictions", ("sts-b_0.3.tsv", sts)),
        ("predictions", ("stsb_infer_exit_layer_0.3.tsv", exits("STS-B", 3)[0])),
    ]
    response = submit(seeded_api, parts)
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    files = stored(seeded_api, sid)
    assert set(files) == {("SST-2", "0.3"), ("SST-2", "0.5"), ("STS-B", "0.3")}
    name, data = files[("SST-2", "0.3")]
    assert name == "sst-2_0.3.tsv + sst-2_infer_exit_layer_0.3.tsv"
    lines = data.decode().splitlines()
    assert lines[0] == "index\tprediction\texit_layer"
    assert lines[1:] == [
        f"{i}\t{v}\t{layer}"
        for i, (v, layer) in enumerate(zip(sst_03_values, sst_03_layers, strict=True))
    ]

    results = score(seeded_api, jobs)
    assert set(results) == set(files)
    for point, values in (("0.3", sst_03_values), ("0.5", sst_05_values)):
        performance = results[("SST-2", point)].performance
        assert performance == pytest.approx(100 * accuracy("SST-2", values))
    assert results[("STS-B", "0.3")].performance is not None
    with seeded_api.db() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        assert sub.state.value == "counting", sub.state


ELUE_TASKS = ("SST-2", "STS-B", "MRPC", "SNLI", "SciTail")


@pytest.mark.parametrize(
    ("folders", "wrapper", "model_field"),
    [
        pytest.param(("sst-2", "sts-b", "mrpc", "snli", "scitail"), "", False, id="elue-names"),
        pytest.param(ELUE_TASKS, "submission/", False, id="wrapped"),
        pytest.param(("SST", "STS", "MRPC", "SNLI", "SciTail"), "", True, id="model-field-too"),
    ],
)
def test_elue_zip_with_task_folders(
    seeded_api: Api,
    jobs: list[tuple[int, str]],
    folders: tuple[str, ...],
    wrapper: str,
    model_field: bool,
) -> None:
    entries: list[tuple[str, bytes]] = []
    expected: dict[tuple[str, str], float | None] = {}
    for seed, (task, folder) in enumerate(zip(ELUE_TASKS, folders, strict=True)):
        entries.append((f"{wrapper}{folder}/model_to_eval.py", MODEL))
        for point in ("3", "6", "12"):
            data, values = preds(task, seed * 10 + int(point))
            entries.append((f"{wrapper}{folder}/{point}.tsv", data))
            is_accuracy = task in ("SST-2", "SNLI", "SciTail")
            expected[(task, point)] = 100 * accuracy(task, values) if is_accuracy else None
    parts: Files = [("model", ("model.py", MODEL))] if model_field else []
    parts.append(("predictions", ("elue.zip", zip_bytes(entries))))
    response = submit(seeded_api, parts)
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    assert set(stored(seeded_api, sid)) == set(expected)
    with seeded_api.db() as session:
        model = session.scalars(
            select(SubmissionFile).where(
                SubmissionFile.submission_id == sid, SubmissionFile.task_id.is_(None)
            )
        ).one()
        assert model.original_name == (
            "model.py" if model_field else f"{wrapper}{folders[0]}/model_to_eval.py"
        )
    results = score(seeded_api, jobs)
    assert set(results) == set(expected)
    for key, want in expected.items():
        assert results[key].performance is not None
        if want is not None:
            assert results[key].performance == pytest.approx(want), key


def test_zip_with_elasticbert_pairs_in_task_folders(
    seeded_api: Api, jobs: list[tuple[int, str]]
) -> None:
    data, values = preds("SST-2")
    zipped = zip_bytes(
        [
            ("SST-2/sst-2_0.3.tsv", data),
            ("SST-2/sst-2_infer_exit_layer_0.3.tsv", exits("SST-2")[0]),
            ("MRPC/0.7.tsv", preds("MRPC")[0]),
            ("MRPC/infer_exit_layer_0.7.tsv", exits("MRPC")[0]),
        ]
    )
    parts: Files = [("model", ("model.py", MODEL)), ("predictions", ("out.zip", zipped))]
    response = submit(seeded_api, parts)
    assert response.status_code == 202, response.text
    files = stored(seeded_api, response.json()["id"])
    assert set(files) == {("SST-2", "0.3"), ("MRPC", "0.7")}
    assert files[("MRPC", "0.7")][0] == "MRPC/0.7.tsv + MRPC/infer_exit_layer_0.7.tsv"
    results = score(seeded_api, jobs)
    assert results[("SST-2", "0.3")].performance == pytest.approx(100 * accuracy("SST-2", values))


# ---------------------------------------------------------------------------------------------
# Refused, clearly, with nothing stored


def _refused(api: Api, parts: Files) -> list[tuple[str | None, str]]:
    with api.db() as session:
        before = footprint(session, api.settings.storage.data_dir)
    got = problems(submit(api, parts))
    with api.db() as session:
        assert footprint(session, api.settings.storage.data_dir) == before
    return got


def test_unknown_task_says_how_the_name_was_read(seeded_api: Api) -> None:
    data, _ = preds("SST-2")
    parts: Files = [
        ("model", ("model.py", MODEL)),
        ("predictions", ("sst3_0.3.tsv", data)),
        ("predictions", ("sst3_infer_exit_layer_0.3.tsv", exits("SST-2")[0])),
        ("predictions", ("QNLI.3.tsv", data)),
    ]
    assert _refused(seeded_api, parts) == [
        (
            "QNLI.3.tsv",
            f"Unknown task 'QNLI' (read from 'QNLI.3.tsv' as <TASK>.<point>.tsv); {KNOWN}",
        ),
        (
            "sst3_0.3.tsv",
            "Unknown task 'sst3' (read from 'sst3_0.3.tsv' as ElasticBERT's "
            "<TASK>_<threshold>.tsv; as <TASK>.<point>.tsv it would be task 'sst3_0', also "
            f"unknown); {KNOWN}",
        ),
        (
            "sst3_infer_exit_layer_0.3.tsv",
            "Unknown task 'sst3' (read from 'sst3_infer_exit_layer_0.3.tsv' as "
            f"<TASK>_infer_exit_layer_<point>.tsv); {KNOWN}",
        ),
    ]
    zipped = zip_bytes([("SST-2/3.tsv", data), ("sst3/3.tsv", data)])
    parts = [("model", ("model.py", MODEL)), ("predictions", ("elue.zip", zipped))]
    assert _refused(seeded_api, parts) == [
        (
            "sst3/3.tsv",
            f"Unknown task 'sst3' (read from the folder of 'sst3/3.tsv': one folder per task); "
            f"{KNOWN}",
        )
    ]


def test_mismatched_pairs_are_refused(seeded_api: Api) -> None:
    parts: Files = [
        ("model", ("model.py", MODEL)),
        ("predictions", ("sst-2_0.3.tsv", preds("SST-2")[0])),
        ("predictions", ("mrpc_infer_exit_layer_0.5.tsv", exits("MRPC")[0])),
    ]
    assert _refused(seeded_api, parts) == [
        (
            "mrpc_infer_exit_layer_0.5.tsv",
            "exit-layer file without its prediction file: expected mrpc_0.5.tsv (task MRPC, "
            "point 0.5) next to it",
        ),
        (
            "sst-2_0.3.tsv",
            "ElasticBERT prediction file without its exit-layer file: expected "
            "sst-2_infer_exit_layer_0.3.tsv next to it (task SST-2, point 0.3); a model without "
            "early exits names its file SST-2.0.3.tsv",
        ),
    ]


def test_bad_exit_layer_file_names_file_line_and_expectation(seeded_api: Api) -> None:
    bad = exits("SST-2")[0].replace(b"\n7\t", b"\n7\t0.5", 1)
    short = b"\n".join(exits("MRPC")[0].split(b"\n")[:-3]) + b"\n"
    parts: Files = [
        ("model", ("model.py", MODEL)),
        ("predictions", ("sst-2_0.3.tsv", preds("SST-2")[0])),
        ("predictions", ("sst-2_infer_exit_layer_0.3.tsv", bad)),
        ("predictions", ("mrpc_0.3.tsv", preds("MRPC")[0])),
        ("predictions", ("mrpc_infer_exit_layer_0.3.tsv", short)),
    ]
    response = submit(seeded_api, parts)
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    first = next(d for d in details if d["file"] == "sst-2_infer_exit_layer_0.3.tsv")
    assert first["line"] == 9
    assert first["column"] == "exit_layer"
    assert "expected an integer from 1 to 1000" in first["problem"]
    problems_mrpc = [d["problem"] for d in details if d["file"] == "mrpc_infer_exit_layer_0.3.tsv"]
    assert "found 1723 rows, expected 1725 (one per test example)" in problems_mrpc


def test_differing_model_files_in_task_folders(seeded_api: Api) -> None:
    zipped = zip_bytes(
        [
            ("SST-2/model_to_eval.py", MODEL),
            ("SST-2/3.tsv", preds("SST-2")[0]),
            ("MRPC/model_to_eval.py", MODEL + b"\n# another model\n"),
            ("MRPC/3.tsv", preds("MRPC")[0]),
        ]
    )
    got = _refused(seeded_api, [("predictions", ("elue.zip", zipped))])
    assert got == [
        (
            "elue.zip",
            "model files differ: MRPC/model_to_eval.py not the same as SST-2/model_to_eval.py; a "
            "submission has one model for all its tasks, so every task folder's model file must "
            "be the same file (or send one model file); submit tasks with different models as "
            "separate submissions",
        )
    ]


# ---------------------------------------------------------------------------------------------
# Names on their own


@pytest.mark.parametrize(
    ("spelled", "task"),
    [
        *[(s, "SST-2") for s in ("sst-2", "sst", "SST2", "SST-2", "Sst_2")],
        *[(s, "STS-B") for s in ("sts-b", "sts", "stsb", "STS-B")],
        ("mrpc", "MRPC"),
        ("snli", "SNLI"),
        ("scitail", "SciTail"),
        ("SCITAIL", "SciTail"),
        ("imdb", None),  # a task once IMDb is imported
        ("sst3", None),
    ],
)
def test_task_spellings(spelled: str, task: str | None) -> None:
    names = TaskNames.of(Task(name=n) for n in ("SST-2", "SNLI", "SciTail", "MRPC", "STS-B"))
    found = names.find(spelled)
    assert (found.name if found else None) == task
    with_imdb = TaskNames.of([*names.tasks, Task(name="IMDb")])
    assert with_imdb.find("imdb") is not None

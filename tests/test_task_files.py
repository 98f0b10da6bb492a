"""Reading task folders (core.tasks.files): the real ELUE files and synthetic blemishes/refusals."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.errors import Problem, TaskDataError
from core.tasks.files import MAX_PROBLEMS, Example, TaskData, read_task_folder, read_tsv
from core.tasks.manifest import Family, LabelKind, Metric, TaskManifest

ELUE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "elue"
REAL_TASKS = ["SST-2", "SNLI", "SciTail", "MRPC", "STS-B"]

needs_real_data = pytest.mark.skipif(
    not all((ELUE_DIR / name / "test.tsv").is_file() for name in REAL_TASKS),
    reason=f"ELUE data not found under {ELUE_DIR}",
)

PAIR = TaskManifest(
    name="pairs",
    display_name="Pairs",
    family=Family.NLI,
    metric=Metric.ACCURACY,
    label_kind=LabelKind.CLASSIFICATION,
    labels=("0", "1"),
    text_columns=("a", "b"),
)
SINGLE = TaskManifest(
    name="single",
    display_name="Single",
    family=Family.SENTIMENT,
    metric=Metric.ACCURACY,
    label_kind=LabelKind.CLASSIFICATION,
    labels=("neg", "pos"),
    text_columns=("sentence",),
)
SCORES = TaskManifest(
    name="scores",
    display_name="Scores",
    family=Family.SIMILARITY,
    metric=Metric.PEARSON_SPEARMAN,
    label_kind=LabelKind.REGRESSION,
    text_columns=("s1", "s2"),
)


# --- helpers -----------------------------------------------------------------------------------


def quote(text: str) -> str:
    """One layer of CSV quoting, as a minimal-quoting writer applies it."""
    return '"' + text.replace('"', '""') + '"' if '"' in text else text


def tsv(*lines: str, end: str = "\n") -> bytes:
    return "".join(line + end for line in lines).encode("utf-8")


def make_task(
    root: Path,
    test: bytes | None,
    gold: bytes | None,
    dev: bytes | None = None,
    name: str = "task",
) -> Path:
    folder = root / name
    folder.mkdir()
    for file, content in (("test.tsv", test), ("test_full.tsv", gold), ("dev.tsv", dev)):
        if content is not None:
            (folder / file).write_bytes(content)
    return folder


def pair_task(root: Path, rows: list[tuple[str, str, str]], **kw: bytes | None) -> Path:
    """A plain, valid pair task from (a, b, label) rows; `kw` overrides test/gold/dev bytes."""
    test = tsv("index\ta\tb", *(f"{i}\t{a}\t{b}" for i, (a, b, _) in enumerate(rows)))
    gold = tsv("a\tb\tlabel", *(f"{a}\t{b}\t{y}" for a, b, y in rows))
    return make_task(root, kw.get("test", test), kw.get("gold", gold), kw.get("dev"))


ROWS = [("A cat sat .", "A cat is sitting .", "1"), ("Dogs bark .", "Fish fly .", "0")]


def problems_of(exc: pytest.ExceptionInfo[TaskDataError]) -> list[Problem]:
    return exc.value.problems


def only_problem(exc: pytest.ExceptionInfo[TaskDataError]) -> Problem:
    assert len(exc.value.problems) == 1, exc.value.problems
    return exc.value.problems[0]


# --- the real ELUE files -----------------------------------------------------------------------

REAL_COUNTS = {
    # name: (test rows, dev rows, label set or None for regression)
    "SST-2": (2210, 1101, {0, 1}),
    "SNLI": (9824, 9842, {0, 1, 2}),
    "SciTail": (2126, 1304, {0, 1}),
    "MRPC": (1725, 408, {0, 1}),
    "STS-B": (1379, 1500, None),
}


@pytest.fixture(scope="module")
def real() -> dict[str, TaskData]:
    return {name: read_task_folder(ELUE_DIR / name) for name in REAL_TASKS}


@needs_real_data
@pytest.mark.parametrize("name", REAL_TASKS)
def test_real_task_counts_and_labels(real: dict[str, TaskData], name: str) -> None:
    data = real[name]
    n_test, n_dev, codes = REAL_COUNTS[name]
    assert data.manifest.name == name
    assert len(data.test) == n_test == data.gold.shape[0]
    assert len(data.dev) == n_dev == data.dev_labels.shape[0]
    width = len(data.manifest.text_columns)
    for example in (*data.test, *data.dev):
        assert len(example.texts) == width
        assert all(text.strip() for text in example.texts)
        assert not any("\r" in text or "\ufeff" in text for text in example.texts)
    if codes is None:
        for labels in (data.gold, data.dev_labels):
            assert labels.dtype == np.float64
            assert np.isfinite(labels).all()
            assert labels.min() == 0.0
            assert labels.max() == 5.0
            assert len(np.unique(labels)) > 50  # graded similarity, not a few classes
            assert 1.5 < float(labels.mean()) < 3.5
    else:
        for labels in (data.gold, data.dev_labels):
            assert labels.dtype == np.int64
            counts = Counter(labels.tolist())
            assert set(counts) == codes  # every label occurs, nothing else does
            assert min(counts.values()) > 0.2 * len(labels)  # no class is a rarity


@needs_real_data
@pytest.mark.parametrize("name", REAL_TASKS)
def test_real_task_hashes_are_of_raw_bytes(real: dict[str, TaskData], name: str) -> None:
    data = real[name]
    for file, digest in (
        ("test.tsv", data.test_sha256),
        ("test_full.tsv", data.gold_sha256),
        ("dev.tsv", data.dev_sha256),
    ):
        assert digest == hashlib.sha256((ELUE_DIR / name / file).read_bytes()).hexdigest()


@needs_real_data
def test_real_spot_checks(real: dict[str, TaskData]) -> None:
    mrpc, stsb, snli, sst2 = real["MRPC"], real["STS-B"], real["SNLI"], real["SST-2"]
    # MRPC's first row, straight from test.tsv line 2 (ID columns ignored); label is column 1.
    assert mrpc.test[0] == Example(
        (
            "PCCW 's chief operating officer , Mike Butcher , and Alex Arena , the chief "
            "financial officer , will report directly to Mr So .",
            "Current Chief Operating Officer Mike Butcher and Group Chief Financial Officer "
            "Alex Arena will report to So .",
        )
    )
    assert mrpc.manifest.labels[int(mrpc.gold[0])] == "1"
    # MRPC row 18: raw in test.tsv, CSV-quoted in test_full.tsv; the raw text wins.
    assert mrpc.test[18].texts[0].startswith("\" I 'm delighted that David Chase")
    assert (
        mrpc.test[18]
        .texts[0]
        .endswith('saga , " HBO chairman and chief executive Chris Albrecht said .')
    )
    # MRPC row 115: a raw text that merely begins and ends with a quote keeps its quotes.
    first = mrpc.test[115].texts[0]
    assert first.startswith('" The GPL violates the U.S. Constitution')
    assert first.endswith('"')
    raw_line = (ELUE_DIR / "MRPC" / "test.tsv").read_text("utf-8").split("\n")[116]
    assert raw_line.split("\t")[3] == first
    # MRPC dev.tsv (BOM, `Quality` header, raw quotes).
    assert (
        mrpc.dev[0].texts[1]
        == '" The foodservice pie business does not fit our long-term growth strategy .'
    )
    assert mrpc.manifest.labels[int(mrpc.dev_labels[0])] == "1"
    # STS-B row 407: quoted once in test.tsv, twice in test_full.tsv.
    assert stsb.test[407].texts[0] == 'A young boy jumping into a pool that says "no diving".'
    assert stsb.gold[407] == pytest.approx(3.2)
    assert stsb.test[715].texts[1] == (
        'Saying "thanks, I don\'t have any questions at the moment."'
    )
    # STS-B row 625: test.tsv keeps a trailing space test_full.tsv dropped.
    assert stsb.test[625].texts[1].endswith("every two hours. ")
    assert stsb.gold[0] == pytest.approx(2.5)
    # SNLI: BOM + CRLF in test.tsv, plain test_full.tsv.
    assert snli.test[0].texts == (
        "This church choir sings to the masses as they sing joyous songs from the book at a "
        "church .",
        "The church has cracks in the ceiling .",
    )
    assert snli.manifest.labels[int(snli.gold[0])] == "1"
    assert sst2.test[0].texts == ("Effective but too-tepid biopic",)
    assert [sst2.manifest.labels[int(c)] for c in sst2.gold[-1:]] == ["0"]


@needs_real_data
def test_real_notes_record_quoting_decisions(real: dict[str, TaskData]) -> None:
    mrpc_notes = " | ".join(real["MRPC"].notes)
    assert (
        "test_full.tsv: text fields (#1 String, #2 String) are CSV-quoted (1 layer)" in mrpc_notes
    )
    assert "test.tsv: text" not in mrpc_notes
    assert "'Quality' read as 'label'" in mrpc_notes
    stsb_notes = " | ".join(real["STS-B"].notes)
    assert "test.tsv: text fields (sentence1, sentence2) are CSV-quoted (1 layer)" in stsb_notes
    assert (
        "test_full.tsv: text fields (sentence1, sentence2) are CSV-quoted (2 layers)" in stsb_notes
    )
    assert "5 text field(s) differ from test.tsv only by trailing spaces" in stsb_notes
    for name in ("SST-2", "SNLI", "SciTail"):
        assert real[name].notes == ()


@needs_real_data
def test_real_read_tsv() -> None:
    header, rows, lines = read_tsv(ELUE_DIR / "SNLI" / "test.tsv")
    assert header == ["index", "premise", "hypothesis"]  # BOM dropped
    assert len(rows) == len(lines) == 9824
    assert lines[0] == 2
    assert lines[-1] == 9825
    assert rows[0][0] == "0"
    assert not rows[-1][-1].endswith("\r")


# --- blemishes that are accepted ---------------------------------------------------------------


def test_plain_pair_task(tmp_path: Path) -> None:
    data = read_task_folder(pair_task(tmp_path, ROWS), PAIR)
    assert data.test == (
        Example(("A cat sat .", "A cat is sitting .")),
        Example(("Dogs bark .", "Fish fly .")),
    )
    assert data.gold.tolist() == [1, 0]
    assert data.gold.dtype == np.int64
    assert data.dev == ()
    assert data.dev_labels.shape == (0,)
    assert data.dev_labels.dtype == np.int64
    assert data.dev_sha256 == ""
    assert any("dev.tsv: absent" in note for note in data.notes)
    with pytest.raises(ValueError, match="read-only"):
        data.gold[0] = 0


def test_bom_crlf_and_trailing_blank_lines(tmp_path: Path) -> None:
    test = b"\xef\xbb\xbf" + tsv("index\ta\tb", "0\tx y\tz", "1\tp\tq", end="\r\n") + b"\r\n\n  \n"
    gold = b"\xef\xbb\xbf" + tsv("a\tb\tlabel", "x y\tz\t1", "p\tq\t0", end="\r\n") + b"\n\n"
    dev = b"\xef\xbb\xbf" + tsv("a\tb\tlabel", "d\te\t0", end="\r\n") + b"\r\n"
    data = read_task_folder(make_task(tmp_path, test, gold, dev), PAIR)
    assert [e.texts for e in data.test] == [("x y", "z"), ("p", "q")]
    assert data.gold.tolist() == [1, 0]
    assert [e.texts for e in data.dev] == [("d", "e")]
    assert data.test_sha256 == hashlib.sha256(test).hexdigest()


def test_label_column_found_by_name_not_position(tmp_path: Path) -> None:
    gold = tsv(
        "label\tid\ta\tb", "1\t-\tA cat sat .\tA cat is sitting .", "0\t-\tDogs bark .\tFish fly ."
    )
    data = read_task_folder(pair_task(tmp_path, ROWS, gold=gold), PAIR)
    assert data.gold.tolist() == [1, 0]


def test_raw_test_and_quoted_gold_like_mrpc(tmp_path: Path) -> None:
    texts = [
        ('" Hello , " he said .', "He greeted ."),  # raw, unbalanced-looking
        ('" Sanitation is poor . "', "plain"),  # raw, merely wrapped in quotes
        ('Say "" twice', '"'),
    ]
    test = tsv("index\ta\tb", *(f"{i}\t{a}\t{b}" for i, (a, b) in enumerate(texts)))
    gold = tsv("label\ta\tb", *(f"1\t{quote(a)}\t{quote(b)}" for a, b in texts))
    data = read_task_folder(make_task(tmp_path, test, gold), PAIR)
    assert [e.texts for e in data.test] == texts
    assert any(
        "test_full.tsv: text fields (a, b) are CSV-quoted (1 layer)" in n for n in data.notes
    )


def test_quoted_once_and_twice_like_stsb(tmp_path: Path) -> None:
    texts = [('A pool that says "no diving".', "A boy jumps ."), ("plain", 'I go by "the rule!')]

    test = tsv("index\ts1\ts2", *(f"{i}\t{quote(a)}\t{quote(b)}" for i, (a, b) in enumerate(texts)))
    gold = tsv("s1\ts2\tlabel", *(f"{quote(quote(a))}\t{quote(quote(b))}\t3.20" for a, b in texts))
    dev = tsv("s1\ts2\tlabel", f"{quote(texts[0][0])}\tx\t5")
    data = read_task_folder(make_task(tmp_path, test, gold, dev), SCORES)
    assert [e.texts for e in data.test] == texts
    assert data.dev[0].texts == (texts[0][0], "x")
    assert data.gold.dtype == np.float64
    assert data.gold.tolist() == [3.2, 3.2]
    assert data.dev_labels.tolist() == [5.0]


def test_trailing_spaces_dropped_in_gold_are_accepted(tmp_path: Path) -> None:
    test = tsv("index\ta\tb", "0\tx\ty  ", "1\tp\tq")
    gold = tsv("a\tb\tlabel", "x\ty\t1", "p\tq\t0")
    data = read_task_folder(make_task(tmp_path, test, gold), PAIR)
    assert data.test[0].texts == ("x", "y  ")  # test.tsv's text, unchanged
    assert any(
        "1 text field(s) differ from test.tsv only by trailing spaces" in n for n in data.notes
    )


def test_custom_task_with_its_own_manifest(tmp_path: Path) -> None:
    folder = make_task(
        tmp_path,
        tsv("index\tsentence", "0\tgreat", "1\tawful", "2\tfine"),
        tsv("sentence\tlabel", "great\tpos", "awful\tneg", "fine\tpos"),
        name="my-reviews",
    )
    manifest = SINGLE.model_dump(mode="json")
    del manifest["name"]  # defaults to the folder name
    (folder / "task.json").write_text(json.dumps(manifest), encoding="utf-8")
    data = read_task_folder(folder)
    assert data.manifest.name == "my-reviews"
    assert data.manifest.labels == ("neg", "pos")
    assert data.gold.tolist() == [1, 0, 1]
    assert data.dev == ()  # dev.tsv is optional for an operator's own task


def test_single_text_task(tmp_path: Path) -> None:
    folder = make_task(
        tmp_path,
        tsv("index\tsentence", "0\tgreat"),
        tsv("sentence\tlabel", "great\tpos"),
        tsv("sentence\tlabel", "meh\tneg", "ok\tpos"),
    )
    data = read_task_folder(folder, SINGLE)
    assert data.test == (Example(("great",)),)
    assert data.dev_labels.tolist() == [0, 1]


# --- refusals ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    folder = make_task(tmp_path, tsv("index\ta\tb", "0\tx\ty"), None)
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(folder, PAIR)
    problem = only_problem(exc)
    assert problem.file == str(folder / "test_full.tsv")
    assert "missing" in problem.problem


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(TaskDataError, match="not found"):
        read_task_folder(tmp_path / "nope", PAIR)


def test_dev_required_for_elue_task(tmp_path: Path) -> None:
    folder = make_task(
        tmp_path,
        tsv("index\tsentence", "0\tgood"),
        tsv("sentence\tlabel", "good\t1"),
        name="SST-2",
    )
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(folder)
    problem = only_problem(exc)
    assert problem.file == str(folder / "dev.tsv")
    assert "missing" in problem.problem


def test_no_manifest_and_unknown_name(tmp_path: Path) -> None:
    folder = pair_task(tmp_path, ROWS)
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(folder)
    assert "task.json" in only_problem(exc).problem


def test_missing_columns(tmp_path: Path) -> None:
    test = tsv("index\ta\tc", "0\tx\ty")
    gold = tsv("a\tb\tgold", "x\ty\t1")
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(make_task(tmp_path, test, gold), PAIR)
    found = {(Path(p.file or "").name, p.line, p.column) for p in problems_of(exc)}
    assert found == {("test.tsv", 1, "b"), ("test_full.tsv", 1, "label")}
    assert all("the header has:" in p.problem for p in problems_of(exc))


def test_index_must_be_first_column(tmp_path: Path) -> None:
    test = tsv("a\tindex\tb", "x\t0\ty")
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, ROWS[:1], test=test), PAIR)
    problem = only_problem(exc)
    assert (problem.line, problem.column) == (1, "index")


def test_index_out_of_order_names_the_line(tmp_path: Path) -> None:
    test = tsv("index\ta\tb", "0\tA cat sat .\tA cat is sitting .", "2\tDogs bark .\tFish fly .")
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, ROWS, test=test), PAIR)
    problem = only_problem(exc)
    assert (Path(problem.file or "").name, problem.line, problem.column) == ("test.tsv", 3, "index")
    assert "expected 1, found '2'" in problem.problem


def test_wrong_field_count_and_blank_line_inside(tmp_path: Path) -> None:
    test = tsv("index\ta\tb", "0\tx\ty", "", "1\tonly one field")
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, ROWS, test=test), PAIR)
    by_line = {p.line: p.problem for p in problems_of(exc)}
    assert set(by_line) == {3, 4}
    assert "blank line" in by_line[3]
    assert "expected 3 tab-separated fields (index, a, b), found 2" in by_line[4]


def test_count_mismatch(tmp_path: Path) -> None:
    gold = tsv("a\tb\tlabel", "A cat sat .\tA cat is sitting .\t1")
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, ROWS, gold=gold), PAIR)
    problem = only_problem(exc)
    assert "1 rows, but test.tsv has 2" in problem.problem
    assert problem.file == str(tmp_path / "task" / "test_full.tsv")


def test_text_mismatch_names_line_column_and_both_texts(tmp_path: Path) -> None:
    rows = [(f"sentence {i}", f"other {i}", "1") for i in range(5)]
    gold_rows = list(rows)
    gold_rows[3] = ("sentence 3", "other THREE", "1")
    gold = tsv("a\tb\tlabel", *(f"{a}\t{b}\t{y}" for a, b, y in gold_rows))
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, rows, gold=gold), PAIR)
    problem = only_problem(exc)
    assert (Path(problem.file or "").name, problem.line, problem.column) == (
        "test_full.tsv",
        5,
        "b",
    )
    assert "test.tsv line 5" in problem.problem
    assert "'other 3'" in problem.problem
    assert "'other THREE'" in problem.problem


def test_long_text_mismatch_is_truncated_around_the_difference(tmp_path: Path) -> None:
    a = "word " * 100 + "end"
    b = "word " * 100 + "END"
    test = tsv("index\ta\tb", f"0\t{a}\tx")
    gold = tsv("a\tb\tlabel", f"{b}\tx\t1")
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(make_task(tmp_path, test, gold), PAIR)
    message = only_problem(exc).problem
    assert len(message) < 300
    assert "at character 501" in message
    assert "end'" in message
    assert "END'" in message


def test_wrong_quoting_is_reported_not_guessed(tmp_path: Path) -> None:
    # test_full.tsv quotes one field and leaves another raw: no layer is removed, so the
    # quoted row differs from test.tsv and is reported.
    test = tsv("index\ta\tb", '0\tsays "hi"\tx', '1\t" raw\ty')
    gold = tsv("a\tb\tlabel", '"says ""hi"""\tx\t1', '" raw\ty\t0')
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(make_task(tmp_path, test, gold), PAIR)
    problem = only_problem(exc)
    assert (problem.line, problem.column) == (2, "a")


def test_bad_labels(tmp_path: Path) -> None:
    rows = [("a", "b", "1.0"), ("c", "d", "yes"), ("e", "f", "0")]
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, rows), PAIR)
    found = [(p.line, p.column) for p in problems_of(exc)]
    assert found == [(2, "label"), (3, "label")]
    assert "label '1.0' is not one of '0', '1'" in problems_of(exc)[0].problem


def test_bad_regression_labels(tmp_path: Path) -> None:
    labels = ["2.5", "nan", "inf", "abc", "", "1e1", "-0.5"]
    test = tsv("index\ts1\ts2", *(f"{i}\tx\ty" for i in range(len(labels))))
    gold = tsv("s1\ts2\tlabel", *(f"x\ty\t{v}" for v in labels))
    dev = tsv("s1\ts2\tlabel", "x\ty\tfive")
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(make_task(tmp_path, test, gold, dev), SCORES)
    found = [(Path(p.file or "").name, p.line) for p in problems_of(exc)]
    assert found == [("test_full.tsv", line) for line in (3, 4, 5, 6)] + [("dev.tsv", 2)]
    assert all("not a finite decimal number" in p.problem for p in problems_of(exc))


def test_problems_are_capped(tmp_path: Path) -> None:
    rows = [(f"t{i}", "u", "maybe") for i in range(MAX_PROBLEMS + 7)]
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, rows), PAIR)
    problems = problems_of(exc)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1].problem == "and 7 more bad labels"


def test_empty_text_and_bad_dev(tmp_path: Path) -> None:
    test = tsv("index\ta\tb", "0\t \ty")
    gold = tsv("a\tb\tlabel", " \ty\t1")
    dev = tsv("a\tb\tlabel", "p\tq\t2")
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(make_task(tmp_path, test, gold, dev), PAIR)
    found = {(Path(p.file or "").name, p.line, p.column) for p in problems_of(exc)}
    assert found == {("test.tsv", 2, "a"), ("dev.tsv", 2, "label")}


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    test = tsv("index\ta\tb", "0\tx\ty") + b"1\tcaf\xe9\tz\n"
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, ROWS, test=test), PAIR)
    problem = only_problem(exc)
    assert problem.line == 3
    assert "UTF-8" in problem.problem


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, ROWS, test=b"\n\n"), PAIR)
    problem = only_problem(exc)
    assert problem.file == str(tmp_path / "task" / "test.tsv")
    assert "empty" in problem.problem


def test_header_only_test_file(tmp_path: Path) -> None:
    folder = make_task(tmp_path, tsv("index\ta\tb"), tsv("a\tb\tlabel"))
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(folder, PAIR)
    assert "no test rows" in only_problem(exc).problem


def test_duplicate_column(tmp_path: Path) -> None:
    gold = tsv("a\tb\tlabel\tlabel", "x\ty\t1\t1")
    with pytest.raises(TaskDataError) as exc:
        read_task_folder(pair_task(tmp_path, ROWS, gold=gold), PAIR)
    problem = only_problem(exc)
    assert (Path(problem.file or "").name, problem.line, problem.column) == (
        "test_full.tsv",
        1,
        "label",
    )
    assert "appears 2 times" in problem.problem


def test_read_tsv_refuses_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_bytes(tsv("a\tb", "1\t2", "3", "4\t5\t6"))
    with pytest.raises(TaskDataError) as exc:
        read_tsv(path)
    assert [p.line for p in problems_of(exc)] == [3, 4]
    with pytest.raises(TaskDataError, match="missing"):
        read_tsv(tmp_path / "absent.tsv")

"""Prediction-file parser: accepted forms, one test per refusal rule, and property tests."""

from __future__ import annotations

import builtins
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import PredictionFileError, Problem
from core.predictions import (
    ModuleCall,
    ParsedPredictions,
    PredictionFormat,
    parse_prediction_file,
    parse_predictions,
)
from core.tasks.manifest import ELUE_MANIFESTS, TaskManifest

SST2 = ELUE_MANIFESTS["SST-2"]
SNLI = ELUE_MANIFESTS["SNLI"]
STSB = ELUE_MANIFESTS["STS-B"]
NAME = "preds.tsv"

REPO = Path(__file__).resolve().parent.parent
ELUE_DIR = Path(
    os.environ.get("PARETOBOARD_TEST_ELUE_DIR", REPO.parent / "shared" / "data" / "elue")
)


def _bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def parse(
    data: str | bytes, manifest: TaskManifest = SST2, n_rows: int = 3, **kwargs: Any
) -> ParsedPredictions:
    return parse_predictions(
        _bytes(data), manifest=manifest, n_rows=n_rows, file_name=NAME, **kwargs
    )


def problems_of(
    data: str | bytes, manifest: TaskManifest = SST2, n_rows: int = 3, **kwargs: Any
) -> list[Problem]:
    with pytest.raises(PredictionFileError) as info:
        parse(data, manifest, n_rows, **kwargs)
    problems = info.value.problems
    assert problems
    assert all(p.file == NAME for p in problems)
    return problems


def only_problem(
    data: str | bytes, manifest: TaskManifest = SST2, n_rows: int = 3, **kwargs: Any
) -> Problem:
    problems = problems_of(data, manifest, n_rows, **kwargs)
    assert len(problems) == 1, problems
    return problems[0]


def find(problems: list[Problem], text: str) -> Problem:
    hits = [p for p in problems if text in p.problem]
    assert hits, f"no problem mentions {text!r}: {[p.problem for p in problems]}"
    return hits[0]


# ---------------------------------------------------------------------------------------------
# Accepted files


def test_simple_form() -> None:
    result = parse("index\tprediction\n0\t1\n1\t0\n2\t1\n")
    assert result.file == NAME
    assert result.format is PredictionFormat.SIMPLE
    assert result.labels.dtype == np.int64
    assert result.labels.tolist() == [1, 0, 1]
    assert result.modules is None
    assert result.exit_layers is None
    assert result.n == 3


def test_pred_header_case_and_spaces_in_names() -> None:
    result = parse(" Index \t PRED\n0\t1\n1\t0\n2\t0\n")
    assert result.format is PredictionFormat.SIMPLE
    assert result.labels.tolist() == [1, 0, 0]


def test_labels_are_codes_into_manifest_labels() -> None:
    manifest = TaskManifest(
        name="toy",
        display_name="Toy",
        family=SNLI.family,
        metric=SNLI.metric,
        label_kind=SNLI.label_kind,
        labels=("neutral", "entailment", "contradiction"),
        text_columns=("premise", "hypothesis"),
    )
    result = parse("index\tpred\n0\tcontradiction\n1\tneutral\n", manifest, n_rows=2)
    assert result.labels.tolist() == [2, 0]


def test_elue_modules_form() -> None:
    data = (
        "index\tpred\tmodules\n"
        "0\t1\t(10),emb; (10,768),layer_1; (768),exit_1\n"
        "1\t0\t(15),emb; (15,768),layer_1; (768),exit_1; (15,768),layer_2; (768),exit_2\n"
        "2\t1\t ( 7 ) , emb ;( 7 , 768 ),layer_1;(768,),exit_1 \n"
    )
    result = parse(data)
    assert result.format is PredictionFormat.ELUE
    assert result.labels.tolist() == [1, 0, 1]
    assert result.exit_layers is None
    assert result.modules is not None
    assert result.modules[0] == (
        ModuleCall("emb", (10,)),
        ModuleCall("layer_1", (10, 768)),
        ModuleCall("exit_1", (768,)),
    )
    assert [m.name for m in result.modules[1]] == ["emb", "layer_1", "exit_1", "layer_2", "exit_2"]
    assert result.modules[2] == (
        ModuleCall("emb", (7,)),
        ModuleCall("layer_1", (7, 768)),
        ModuleCall("exit_1", (768,)),
    )


def test_modules_column_may_come_before_prediction() -> None:
    result = parse("index\tmodules\tprediction\n0\t(3),emb\t1\n1\t(4),emb\t0\n", n_rows=2)
    assert result.labels.tolist() == [1, 0]
    assert result.modules == ((ModuleCall("emb", (3,)),), (ModuleCall("emb", (4,)),))


def test_module_names_may_hold_dots_and_dashes() -> None:
    result = parse("index\tpred\tmodules\n0\t1\t(3,4),encoder.layer-1_a\n", n_rows=1)
    assert result.modules == ((ModuleCall("encoder.layer-1_a", (3, 4)),),)


def test_exit_layer_form() -> None:
    result = parse("index\tprediction\texit_layer\n0\t1\t1\n2\t0\t12\n1\t0\t 3 \n")
    assert result.format is PredictionFormat.EXIT_LAYER
    assert result.exit_layers is not None
    assert result.exit_layers.dtype == np.int64
    assert result.exit_layers.tolist() == [1, 3, 12]
    assert result.labels.tolist() == [1, 0, 0]
    assert result.modules is None


def test_bom_crlf_and_trailing_blank_lines() -> None:
    data = b"\xef\xbb\xbfindex\tprediction\r\n0\t1\r\n1\t0\r\n2\t1\r\n\r\n\r\n  \r\n"
    assert parse(data).labels.tolist() == [1, 0, 1]


def test_mixed_line_ends_and_blank_lines_in_between() -> None:
    data = b"index\tprediction\r\n0\t1\n\n1\t0\r2\t1\r\n\t\n"
    assert parse(data).labels.tolist() == [1, 0, 1]


def test_line_numbers_count_blank_lines_and_lone_cr() -> None:
    problems = problems_of(b"\n\nindex\tprediction\r\n\n0\t1\r1\tpos\r\n2\t0\n")
    assert find(problems, '"pos"').line == 6


def test_surrounding_spaces_and_quoted_fields() -> None:
    result = parse('index\tprediction\n "0" \t"1"\n1 \t 0\n"2"\t" 1 "\n')
    assert result.labels.tolist() == [1, 0, 1]


def test_shuffled_rows_give_the_same_arrays() -> None:
    rows = [f"{i}\t{i % 3}\t({i + 1},768),layer_1; (768),exit_1" for i in range(50)]
    ordered = parse("index\tpred\tmodules\n" + "\n".join(rows), SNLI, n_rows=50)
    random.Random(1).shuffle(rows)
    shuffled = parse("index\tpred\tmodules\n" + "\n".join(rows), SNLI, n_rows=50)
    assert np.array_equal(ordered.labels, shuffled.labels)
    assert ordered.modules == shuffled.modules
    assert ordered.labels.tolist() == [i % 3 for i in range(50)]


def test_regression_floats() -> None:
    data = 'index\tprediction\n0\t3.25\n1\t 0 \n2\t"4.8"\n3\t1e-1\n4\t-0.5\n5\t5\n'
    result = parse(data, STSB, n_rows=6)
    assert result.labels.dtype == np.float64
    assert result.labels.tolist() == [3.25, 0.0, 4.8, 0.1, -0.5, 5.0]


@pytest.mark.parametrize(("spelling", "code"), [("1.0", 1), ("0.00", 0), ("1.", 1)])
def test_integer_labels_may_be_spelled_as_integer_valued_decimals(spelling: str, code: int) -> None:
    assert parse(f"index\tprediction\n0\t{spelling}\n", n_rows=1).labels.tolist() == [code]


@pytest.mark.parametrize("spelling", ["2.0", "1.5", "01", "1e0", "+1", "True", "1.0.0"])
def test_other_label_spellings_are_refused(spelling: str) -> None:
    problem = only_problem(f"index\tprediction\n0\t{spelling}\n", n_rows=1)
    assert problem.line == 2
    assert problem.column == "prediction"
    assert f'label "{spelling}" is not one of 0, 1' in problem.problem


def test_result_arrays_are_read_only() -> None:
    result = parse("index\tprediction\texit_layer\n0\t1\t2\n", n_rows=1)
    assert result.exit_layers is not None
    with pytest.raises(ValueError, match="read-only"):
        result.labels[0] = 0
    with pytest.raises(ValueError, match="read-only"):
        result.exit_layers[0] = 1


def test_parse_prediction_file(tmp_path: Path) -> None:
    path = tmp_path / "upload-123.tsv"
    path.write_bytes(b"index\tprediction\n0\t1\n1\t0\n2\t1\n")
    result = parse_prediction_file(path, manifest=SST2, n_rows=3)
    assert result.file == "upload-123.tsv"
    assert result.labels.tolist() == [1, 0, 1]
    renamed = parse_prediction_file(path, manifest=SST2, n_rows=3, file_name="mine.tsv")
    assert renamed.file == "mine.tsv"


def test_parse_prediction_file_reports_its_display_name(tmp_path: Path) -> None:
    path = tmp_path / "upload-123.tsv"
    path.write_bytes(b"index\tprediction\n0\tpos\n")
    with pytest.raises(PredictionFileError) as info:
        parse_prediction_file(path, manifest=SST2, n_rows=1, file_name="mine.tsv")
    assert info.value.message == "mine.tsv: 1 problem"
    assert [p.file for p in info.value.problems] == ["mine.tsv"]


# ---------------------------------------------------------------------------------------------
# Refusals: header


@pytest.mark.parametrize("first_line", ["0\t1", "0", "  3\tpos", "1.5\t1"])
def test_missing_header(first_line: str) -> None:
    problem = only_problem(f"{first_line}\n1\t0\n2\t1\n")
    assert problem.line == 1
    assert "missing header" in problem.problem
    assert "expected a header line index<TAB>prediction" in problem.problem


def test_header_after_blank_lines_is_named_by_its_line() -> None:
    problem = only_problem("\n\n0\t1\n")
    assert problem.line == 3
    assert "missing header" in problem.problem


def test_comma_separated_header() -> None:
    problem = only_problem("index,prediction\n0,1\n")
    assert problem.line == 1
    assert "tab-separated" in problem.problem


def test_wrong_header_without_index() -> None:
    problems = problems_of("idx\tprediction\n0\t1\n")
    assert len(problems) == 2
    unknown = find(problems, 'unknown column "idx"')
    assert (unknown.line, unknown.column) == (1, "idx")
    missing = find(problems, "no index column")
    assert (missing.line, missing.column) == (1, "index")
    assert "index<TAB>prediction" in missing.problem


def test_wrong_header_without_prediction() -> None:
    problems = problems_of("index\tlabel\n0\t1\n")
    assert (find(problems, 'unknown column "label"').column) == "label"
    missing = find(problems, "no prediction column")
    assert (missing.line, missing.column) == (1, "prediction")


def test_exit_layer_file_without_predictions_is_refused() -> None:
    problem = only_problem("index\texit_layer\n0\t1\n")
    assert problem.column == "prediction"
    assert "no prediction column" in problem.problem


def test_index_must_be_first() -> None:
    problem = only_problem("prediction\tindex\n1\t0\n0\t1\n1\t2\n")
    assert (problem.line, problem.column) == (1, "index")
    assert 'index must be the first column, found "prediction" first' in problem.problem


def test_unknown_column_and_rows_are_still_checked() -> None:
    problems = problems_of("index\tprediction\tconfidence\n0\t1\t0.9\n1\tpos\t0.2\n2\t0\t0.4\n")
    assert len(problems) == 2
    unknown = find(problems, 'unknown column "confidence"')
    assert (unknown.line, unknown.column) == (1, "confidence")
    assert "optionally modules or exit_layer" in unknown.problem
    assert find(problems, '"pos"').line == 3


def test_empty_column_name() -> None:
    problems = problems_of("index\tprediction\t\n0\t1\t\n")
    problem = find(problems, "column 3 has no name")
    assert problem.line == 1


@pytest.mark.parametrize(
    ("header", "column"),
    [("index\tprediction\tpred", "pred"), ("index\tpred\tindex", "index")],
)
def test_duplicate_column(header: str, column: str) -> None:
    problems = problems_of(f"{header}\n0\t1\t1\n", n_rows=1)
    problem = find(problems, "duplicate column")
    assert (problem.line, problem.column) == (1, column)
    assert "column 3" in problem.problem


def test_modules_and_exit_layer_together() -> None:
    problem = only_problem("index\tpred\tmodules\texit_layer\n0\t1\t(3),emb\t1\n", n_rows=1)
    assert problem.line == 1
    assert "not both" in problem.problem


# ---------------------------------------------------------------------------------------------
# Refusals: index and row count


def test_missing_index() -> None:
    problems = problems_of("index\tprediction\n0\t1\n2\t0\n")
    assert len(problems) == 2
    count = find(problems, "found 2 rows, expected 3")
    assert count.line is None
    missing = find(problems, "index 1 is missing")
    assert missing.column == "index"


def test_many_missing_indexes_list_the_first_few_and_the_count() -> None:
    rows = "".join(f"{i}\t1\n" for i in range(5))
    problems = problems_of("index\tprediction\n" + rows, n_rows=100)
    missing = find(problems, "95 indexes are missing")
    assert "5, 6, 7, 8, 9, 10, 11, 12, 13, 14, ..." in missing.problem
    assert "15" not in missing.problem.split("...")[0]
    assert find(problems, "found 5 rows, expected 100")


def test_duplicate_index_names_both_lines() -> None:
    problems = problems_of("index\tprediction\n0\t1\n1\t0\n1\t1\n")
    duplicate = find(problems, "index 1 appears twice")
    assert "line 3" in duplicate.problem
    assert "line 4" in duplicate.problem
    assert (duplicate.line, duplicate.column) == (4, "index")
    assert len(problems) == 2  # three rows, as expected, but index 2 is missing
    assert find(problems, "index 2 is missing")


@pytest.mark.parametrize("index", ["3", "2210", "-1", "99999999999999999999999999"])
def test_out_of_range_index(index: str) -> None:
    problems = problems_of(f"index\tprediction\n0\t1\n1\t1\n{index}\t0\n")
    problem = find(problems, f"index {index} is out of range: expected 0..2")
    assert (problem.line, problem.column) == (4, "index")


@pytest.mark.parametrize("index", ["abc", "1.0", "+2", "", "2e0", "\u0662", "0x2"])
def test_non_integer_index(index: str) -> None:
    problems = problems_of(f"index\tprediction\n0\t1\n1\t1\n{index}\t0\n")
    problem = problems[0]
    assert (problem.line, problem.column) == (4, "index")
    assert "is not an integer" in problem.problem or "index is empty" in problem.problem
    assert "expected an integer from 0 to 2" in problem.problem


def test_more_rows_than_the_test_set() -> None:
    problems = problems_of("index\tprediction\n0\t1\n1\t1\n2\t0\n3\t0\n")
    assert find(problems, "found 4 rows, expected 3").line is None
    assert find(problems, "index 3 is out of range").line == 5


# ---------------------------------------------------------------------------------------------
# Refusals: predictions


def test_label_outside_the_label_set() -> None:
    problem = only_problem("index\tpred\n0\t1\n1\tpos\n2\t0\n")
    assert (problem.line, problem.column) == (3, "pred")
    assert 'label "pos" is not one of 0, 1' in problem.problem


def test_empty_label() -> None:
    problem = only_problem("index\tprediction\n0\t1\n1\t\n2\t0\n")
    assert (problem.line, problem.column) == (3, "prediction")
    assert "label is empty: expected one of 0, 1" in problem.problem


def test_label_of_another_task_is_refused() -> None:
    problem = only_problem("index\tprediction\n0\t2\n", n_rows=1)
    assert 'label "2" is not one of 0, 1' in problem.problem
    assert parse("index\tprediction\n0\t2\n", SNLI, n_rows=1).labels.tolist() == [2]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("abc", '"abc" is not a number'),
        ("", "prediction is empty"),
        ("1_000", '"1_000" is not a number'),
        ("\u0663", "is not a number"),
        ("3,5", '"3,5" is not a number'),
        ("nan", '"nan" is NaN'),
        ("NaN", '"NaN" is NaN'),
        ("-nan", "is NaN"),
        ("inf", '"inf" is infinite'),
        ("-inf", '"-inf" is infinite'),
        ("Infinity", "is infinite"),
        ("1e999", '"1e999" is too large'),
    ],
)
def test_regression_value_must_be_a_finite_number(value: str, text: str) -> None:
    problem = only_problem(f"index\tprediction\n0\t1.5\n1\t{value}\n", STSB, n_rows=2)
    assert (problem.line, problem.column) == (3, "prediction")
    assert text in problem.problem
    assert "expected a finite decimal number" in problem.problem


@pytest.mark.parametrize(
    ("modules", "text"),
    [
        ("", "modules is empty: expected ;-separated entries (<shape>),<module name>"),
        ('""', "modules is empty"),
        ("(10)emb", 'entry 1 "(10)emb" is malformed: expected (<shape>),<module name>'),
        ("(10),emb; (10,768)layer_1", 'entry 2 "(10,768)layer_1" is malformed'),
        ("10,emb", 'entry 1 "10,emb" is malformed'),
        ("emb", 'entry 1 "emb" is malformed'),
        ("(10,emb", 'entry 1 "(10,emb" is malformed'),
        ("((10)),emb", "is malformed"),
        ("(10),emb;", 'entry 2 "" is empty'),
        ("(10),emb;;(768),exit_1", 'entry 2 "" is empty'),
        ("(),emb", "shape is empty"),
        ("(0),emb", "dimension 0 is not positive"),
        ("(10,-768),layer_1", "dimension -768 is not positive"),
        ("(10,x),layer_1", 'dimension "x" is not an integer'),
        ("(10,7.5),layer_1", 'dimension "7.5" is not an integer'),
        ("(10,,768),layer_1", 'dimension "" is not an integer'),
        ("(1,2,3,4,5,6,7,8,9),layer_1", "shape has 9 dimensions, the limit is 8"),
        ("(10000001),emb", "dimension 10000001 is above the limit 10000000"),
        ("(123456789012345678901234567890),emb", "is above the limit 10000000"),
        ("(10),", "module name is missing"),
        ("(10),1emb", 'module name "1emb" is not valid'),
        ("(10),emb layer", 'module name "emb layer" is not valid'),
        ("(10),.emb", 'module name ".emb" is not valid'),
        ("(10),emb,x", 'module name "emb,x" is not valid'),
        ("(10)," + "m" * 129, "module name is 129 characters long, the limit is 128"),
        (";".join(["(1),m"] * 4097), "modules has 4097 entries, the limit is 4096"),
    ],
)
def test_malformed_modules(modules: str, text: str) -> None:
    problem = only_problem(
        f"index\tpred\tmodules\n0\t1\t(10),emb\n1\t0\t{modules}\n", SST2, n_rows=2
    )
    assert (problem.line, problem.column) == (3, "modules")
    assert text in problem.problem


def test_every_bad_module_entry_is_reported() -> None:
    problems = problems_of(
        "index\tpred\tmodules\n0\t1\t(0),emb; (10,768),layer_1; (768),1x\n", n_rows=1
    )
    assert [p.problem.split(":")[0] for p in problems] == [
        'modules entry 1 "(0),emb"',
        'modules entry 3 "(768),1x"',
    ]
    assert all(p.line == 2 for p in problems)


def test_identical_bad_modules_on_several_rows_are_each_reported() -> None:
    rows = "".join(f"{i}\t1\t(0),emb\n" for i in range(3))
    problems = problems_of("index\tpred\tmodules\n" + rows)
    assert [p.line for p in problems] == [2, 3, 4]


@pytest.mark.parametrize("layer", ["0", "-1", "1001", "abc", "1.0", "", "99999999999999999999"])
def test_bad_exit_layer(layer: str) -> None:
    problem = only_problem(f"index\tprediction\texit_layer\n0\t1\t2\n1\t0\t{layer}\n", n_rows=2)
    assert (problem.line, problem.column) == (3, "exit_layer")
    assert f'exit_layer "{layer}" is not valid: expected an integer from 1 to 1000' in (
        problem.problem
    )


@pytest.mark.parametrize(
    ("row", "found"),
    [("1", "found 1 field, expected 2"), ("1\t0\t0", "found 3 fields, expected 2")],
)
def test_wrong_field_count(row: str, found: str) -> None:
    problems = problems_of(f"index\tprediction\n0\t1\n{row}\n2\t0\n")
    problem = problems[0]
    assert problem.line == 3
    assert found in problem.problem
    assert "(index, prediction)" in problem.problem


def test_space_separated_row_gets_a_tab_hint() -> None:
    problems = problems_of("index\tprediction\n0 1\n1\t0\n2\t0\n")
    problem = find(problems, "found 1 field, expected 2")
    assert problem.line == 2
    assert "separated by tabs" in problem.problem


# ---------------------------------------------------------------------------------------------
# Refusals: the file as a whole


def test_binary_file_with_nul() -> None:
    data = b"index\tprediction\n0\t1\n1\x00\t0\n"
    problem = only_problem(data)
    assert problem.line == 3
    assert data.index(b"\x00") == 22
    assert "file is binary: NUL byte at byte offset 22 (line 3)" in problem.problem


def test_utf16_file_gets_a_hint() -> None:
    problem = only_problem("index\tprediction\n0\t1\n".encode("utf-16"))
    assert "file is binary" in problem.problem
    assert "UTF-16" in problem.problem


def test_invalid_utf8() -> None:
    data = b"index\tprediction\n0\t1\n1\t\xe9\n"
    problem = only_problem(data)
    assert problem.line == 3
    assert data.index(b"\xe9") == 23
    assert "not valid UTF-8: byte 0xe9 at byte offset 23 (line 3)" in problem.problem


@pytest.mark.parametrize("data", [b"", b"\n", b"  \r\n\t\n\n", b"\xef\xbb\xbf"])
def test_empty_file(data: bytes) -> None:
    problem = only_problem(data)
    assert problem.line is None
    assert "file is empty" in problem.problem
    assert "index<TAB>prediction" in problem.problem


@pytest.mark.parametrize("data", ["index\tprediction", "index\tprediction\r\n\r\n  \n"])
def test_header_only_file(data: str) -> None:
    problem = only_problem(data)
    assert "file has a header but no data rows: expected 3 rows" in problem.problem


def test_oversize_bytes() -> None:
    data = b"index\tprediction\n0\t1\n1\t0\n"
    problem = only_problem(data, n_rows=2, max_bytes=10)
    assert problem.problem == f"file is {len(data)} bytes, the limit is 10"
    assert parse(data, n_rows=2, max_bytes=len(data)).n == 2


def test_oversize_file_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.tsv"
    path.write_bytes(b"index\tprediction\n" + b"0\t1\n" * 1000)

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the oversize file was opened")

    monkeypatch.setattr(Path, "open", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    monkeypatch.setattr(Path, "read_text", no_reading)
    monkeypatch.setattr(builtins, "open", no_reading)
    with pytest.raises(PredictionFileError) as info:
        parse_prediction_file(path, manifest=SST2, n_rows=1000, max_bytes=1000, file_name="b.tsv")
    (problem,) = info.value.problems
    assert problem.problem == "file is 4017 bytes, the limit is 1000"
    assert problem.file == "b.tsv"


def test_problem_cap() -> None:
    rows = "".join(f"{i}\tbad\n" for i in range(500))
    with pytest.raises(PredictionFileError) as info:
        parse("index\tprediction\n" + rows, n_rows=500)
    problems = info.value.problems
    assert len(problems) == 51
    assert all('label "bad"' in p.problem for p in problems[:50])
    assert [p.line for p in problems[:3]] == [2, 3, 4]
    assert problems[-1].problem.startswith("450 more problems not shown")
    assert info.value.message == f"{NAME}: 500 problems"


def test_custom_problem_cap() -> None:
    rows = "".join(f"x\t{i}\n" for i in range(20))
    problems = problems_of("index\tprediction\n" + rows, n_rows=20, max_problems=5)
    assert len(problems) == 6
    assert "more problems not shown" in problems[-1].problem


def test_every_problem_is_collected() -> None:
    data = (
        "index\tprediction\n"
        "0\t1\n"
        "0\t0\n"  # duplicate
        "x\t1\n"  # not an integer
        "3\tpos\n"  # out of range and a bad label
        "4\t1\t1\n"  # field count
    )
    problems = problems_of(data)
    assert [(p.line, p.column) for p in problems] == [
        (3, "index"),
        (4, "index"),
        (5, "index"),
        (5, "prediction"),
        (6, None),
        (None, None),
        (None, "index"),
    ]


def test_error_message_counts_problems() -> None:
    with pytest.raises(PredictionFileError) as info:
        parse("index\tprediction\n0\tx\n1\ty\n2\t1\n")
    assert info.value.message == f"{NAME}: 2 problems"
    assert info.value.status_code == 422


def test_n_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="n_rows"):
        parse("index\tprediction\n", n_rows=0)


# ---------------------------------------------------------------------------------------------
# Properties


def _call(data: bytes, manifest: TaskManifest, n_rows: int) -> ParsedPredictions | None:
    error: PredictionFileError | None = None
    try:
        result = parse_predictions(data, manifest=manifest, n_rows=n_rows, file_name=NAME)
    except PredictionFileError as exc:
        error = exc
    if error is not None:
        assert error.problems
        assert len(error.problems) <= 51
        assert all(isinstance(p, Problem) and p.file == NAME for p in error.problems)
        return None
    assert result.n == n_rows
    if manifest.labels:
        assert result.labels.dtype == np.int64
        assert ((result.labels >= 0) & (result.labels < len(manifest.labels))).all()
    else:
        assert result.labels.dtype == np.float64
        assert np.isfinite(result.labels).all()
    return result


MANIFESTS = st.sampled_from([SST2, SNLI, STSB])


@given(data=st.binary(max_size=3000), manifest=MANIFESTS, n_rows=st.integers(1, 5))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_raise_anything_else(
    data: bytes, manifest: TaskManifest, n_rows: int
) -> None:
    _call(data, manifest, n_rows)


PIECES = [
    "index",
    "Index",
    "prediction",
    "pred",
    "modules",
    "exit_layer",
    "label",
    "\t",
    "\t",
    "\t",
    "\n",
    "\n",
    "\r\n",
    "\r",
    " ",
    '"',
    "0",
    "1",
    "2",
    "3",
    "9",
    "-",
    ".",
    "e",
    "(",
    ")",
    ",",
    ";",
    "emb",
    "layer_1",
    "(10),emb",
    "(10,768),layer_1",
    "\ufeff",
    "nan",
    "inf",
    "1.0",
    "99999999999999999999999",
    "\x00",
    "\u0663",
]
HEADERS = st.sampled_from(
    [
        "",
        "index\tprediction\n",
        "index\tpred\tmodules\n",
        "index\tprediction\texit_layer\n",
        "\ufeffindex\tpred\r\n",
    ]
)


@given(
    header=HEADERS,
    body=st.lists(st.sampled_from(PIECES), max_size=80).map("".join),
    manifest=MANIFESTS,
    n_rows=st.integers(1, 4),
)
@settings(max_examples=500, deadline=None)
def test_header_like_text_never_raises_anything_else(
    header: str, body: str, manifest: TaskManifest, n_rows: int
) -> None:
    _call((header + body).encode("utf-8"), manifest, n_rows)


@st.composite
def valid_file(draw: st.DrawFn) -> tuple[TaskManifest, list[str], list[str]]:
    manifest = draw(MANIFESTS)
    n = draw(st.integers(1, 30))
    if manifest.labels:
        values = draw(st.lists(st.sampled_from(manifest.labels), min_size=n, max_size=n))
    else:
        floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
        values = [repr(v) for v in draw(st.lists(floats, min_size=n, max_size=n))]
    lengths = draw(st.lists(st.integers(1, 500), min_size=n, max_size=n))
    rows = [
        f"{i}\t{value}\t({length}),emb; ({length},768),layer_1; (768),exit_1"
        for i, (value, length) in enumerate(zip(values, lengths, strict=True))
    ]
    return manifest, rows, values


@given(case=valid_file(), order=st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_permutation_parses_to_the_same_arrays(
    case: tuple[TaskManifest, list[str], list[str]], order: random.Random
) -> None:
    manifest, rows, values = case
    header = "index\tpred\tmodules\n"
    base = parse(header + "\n".join(rows), manifest, n_rows=len(rows))
    shuffled_rows = list(rows)
    order.shuffle(shuffled_rows)
    shuffled = parse(header + "\n".join(shuffled_rows) + "\n", manifest, n_rows=len(rows))
    assert np.array_equal(base.labels, shuffled.labels)
    assert base.modules == shuffled.modules
    if manifest.labels:
        assert base.labels.tolist() == [manifest.labels.index(v) for v in values]
    else:
        assert base.labels.tolist() == [float(v) for v in values]


# ---------------------------------------------------------------------------------------------
# Real ELUE test-set sizes


def _test_rows(task: str) -> int:
    path = ELUE_DIR / task / "test.tsv"
    if not path.is_file():
        pytest.skip(f"ELUE data not found at {ELUE_DIR}")
    lines = path.read_bytes().split(b"\n")
    return sum(1 for line in lines if line.strip()) - 1  # minus the header


def _prediction_file(manifest: TaskManifest, n_rows: int, *, modules: bool, seed: int) -> bytes:
    rng = random.Random(seed)
    rows = ["index\tpred\tmodules" if modules else "index\tprediction"]
    order = list(range(n_rows))
    rng.shuffle(order)
    for i in order:
        value = rng.choice(manifest.labels) if manifest.labels else f"{rng.uniform(0, 5):.3f}"
        if modules:
            length, exit_at = rng.randint(5, 80), rng.randint(1, 12)
            entries = [f"({length}),emb"]
            for layer in range(1, exit_at + 1):
                entries += [f"({length},768),layer_{layer}", f"(768),exit_{layer}"]
            rows.append(f"{i}\t{value}\t{'; '.join(entries)}")
        else:
            rows.append(f"{i}\t{value}")
    return ("\r\n".join(rows) + "\r\n").encode()


@pytest.mark.parametrize(("task", "expected_rows"), [("SST-2", 2210), ("STS-B", 1379)])
def test_real_test_set_sizes(task: str, expected_rows: int) -> None:
    n_rows = _test_rows(task)
    assert n_rows == expected_rows
    manifest = ELUE_MANIFESTS[task]
    for modules in (False, True):
        result = parse(
            _prediction_file(manifest, n_rows, modules=modules, seed=7), manifest, n_rows
        )
        assert result.n == n_rows
        assert result.format is (PredictionFormat.ELUE if modules else PredictionFormat.SIMPLE)
    missing_last = b"\r\n".join(
        _prediction_file(manifest, n_rows, modules=False, seed=7).split(b"\r\n")[:-2]
    )
    problems = problems_of(missing_last, manifest, n_rows)
    assert find(problems, f"found {n_rows - 1} rows, expected {n_rows}")

"""Weights files (safetensors only), checked without storing anything, and matched to a graph."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save

from core.errors import Problem
from core.submissions.weights import (
    TensorSpecs,
    WeightsManifest,
    check_weights_file,
    dtype_kind,
    manifest_from_json,
    match_weights,
)
from tests.weights_helpers import (
    TINY_SHAPES,
    pickled_weights,
    raw_safetensors,
    tiny_weights,
    truncated_header,
)

NAME = "model.safetensors"


def check(tmp_path: Path, data: bytes, *, max_bytes: int = 10**9) -> WeightsManifest | list[str]:
    path = tmp_path / "w"
    path.write_bytes(data)
    found = check_weights_file(path, file=NAME, max_bytes=max_bytes, max_tensors=1000)
    if isinstance(found, list):
        assert found, "a refusal lists its problems"
        assert all(isinstance(p, Problem) and p.file == NAME for p in found)
        return [p.problem for p in found]
    return found


def refused(tmp_path: Path, data: bytes, **kwargs: int) -> list[str]:
    found = check(tmp_path, data, **kwargs)
    assert isinstance(found, list), f"accepted: {found}"
    return found


def test_good_file_gives_its_manifest(tmp_path: Path) -> None:
    found = check(tmp_path, tiny_weights(rows=10))
    assert isinstance(found, WeightsManifest)
    assert found.tensors == {
        "emb.weight": ((10, 16), "float32"),
        "proj.weight": ((16, 16), "float32"),
        "proj.bias": ((16,), "float32"),
        "out.weight": ((2, 16), "float32"),
        "out.bias": ((2,), "float32"),
    }
    assert found.tensor_count == 5
    assert found.element_count == 160 + 256 + 16 + 32 + 2
    assert found.metadata == {"format": "pt"}
    assert manifest_from_json(found.to_json()) == found.tensors


def test_every_safetensors_dtype_the_runner_loads(tmp_path: Path) -> None:
    """bf16 and the integer and bool buffers too, written by hand (numpy has no bfloat16)."""
    header = {
        "h": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
        "ids": {"dtype": "I64", "shape": [1], "data_offsets": [4, 12]},
        "mask": {"dtype": "BOOL", "shape": [2, 2], "data_offsets": [12, 16]},
        "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [16, 16]},
        "__metadata__": {"note": "hand-made"},
    }
    found = check(tmp_path, raw_safetensors(header, b"\x00" * 16))
    assert isinstance(found, WeightsManifest)
    assert found.tensors == {
        "h": ((2,), "bfloat16"),
        "ids": ((1,), "int64"),
        "mask": ((2, 2), "bool"),
        "empty": ((0, 3), "float32"),
    }


def test_pickle_named_safetensors_is_refused_as_a_pickle(tmp_path: Path) -> None:
    (problem,) = refused(tmp_path, pickled_weights())
    assert "this is a Python pickle" in problem
    assert "not safetensors" in problem
    assert "safetensors.torch.save_file" in problem  # and how to make one


def test_torch_save_zip_is_refused_as_a_zip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # the layout torch.save writes
        zf.writestr("archive/data.pkl", pickled_weights())
    (problem,) = refused(tmp_path, buf.getvalue())
    assert "this is a zip archive (what torch.save writes), not safetensors" in problem


def test_truncated_header_is_refused(tmp_path: Path) -> None:
    (problem,) = refused(tmp_path, truncated_header())
    assert problem.startswith("truncated: the header should be ")
    assert "only 32 bytes follow the header length (the file is 40 bytes)" in problem


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the weights file is empty"),
        (b"\x01\x02", "too short for the 8-byte header length"),
        (struct.pack("<Q", 2**40) + b"{}", "header length of 1,099,511,627,776 bytes"),
        (raw_safetensors({}, b"")[:8] + b"[]", "the header is not a JSON object"),
        (struct.pack("<Q", 3) + b"{x}", "the header is not valid JSON"),
        (struct.pack("<Q", 2) + b"\xff{", "the header is not UTF-8"),
        (raw_safetensors({}, b""), "the file holds no tensors"),
    ],
)
def test_framing_problems(tmp_path: Path, data: bytes, expected: str) -> None:
    problems = refused(tmp_path, data)
    assert any(expected in p for p in problems), problems


def test_oversize_is_refused_before_reading(tmp_path: Path) -> None:
    data = tiny_weights(rows=4)
    (problem,) = refused(tmp_path, data, max_bytes=len(data) - 1)
    assert problem == f"the weights file is {len(data):,} bytes, the limit is {len(data) - 1:,}"


def test_every_problem_in_the_header_is_listed(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},  # overlaps a
        "c": {"dtype": "F32", "shape": [1], "data_offsets": [16, 20]},  # gap before it
        "d": {"dtype": "F32", "shape": [3], "data_offsets": [20, 24]},  # 4 bytes for 12
        "e": {"dtype": "Q7", "shape": [1, -1], "data_offsets": [9, 2]},
        "f": {"dtype": "F64", "shape": [1], "data_offsets": [24, 40]},  # past the data
        "__metadata__": {"format": 1},
    }
    problems = refused(tmp_path, raw_safetensors(header, b"\x00" * 30))
    expected = [
        "__metadata__ must map strings to strings; not a string: ['format']",
        "tensor 'd': data_offsets [20, 24) span 4 bytes, but shape [3] of F32 needs 12",
        "tensor 'e': dtype 'Q7' is not one of BOOL, U8",
        "tensor 'e': shape must be a list of non-negative integers, got [1, -1]",
        "tensor 'e': data_offsets must be [begin, end] with 0 <= begin <= end, got [9, 2]",
        "tensor 'f': data_offsets [24, 40) span 16 bytes, but shape [1] of F64 needs 8",
        "tensor 'f': data_offsets [24, 40) end beyond the data, which is 30 bytes",
        "tensor 'b': data_offsets [4, 12) overlap those of tensor 'a' [0, 8)",
        "bytes [12, 16) of the data belong to no tensor (before tensor 'c')",
    ]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    assert len(problems) == len(expected)


def test_bytes_after_the_last_tensor_are_refused(tmp_path: Path) -> None:
    problems = refused(tmp_path, tiny_weights(rows=1) + b"junk")
    assert problems == [
        "the data is 1,292 bytes but the tensors end at byte 1,288: 4 bytes at the end belong "
        "to no tensor"
    ]


def test_names_given_twice_are_refused(tmp_path: Path) -> None:
    text = (
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    )
    problems = refused(tmp_path, struct.pack("<Q", len(text)) + text + b"\x00" * 4)
    assert "tensor names given twice in the header: 'a'" in problems


@settings(max_examples=25, deadline=None)
@given(
    shapes=st.dictionaries(
        st.text("abcdefgh.", min_size=1, max_size=8),
        st.tuples(
            st.lists(st.integers(0, 4), max_size=3),
            st.sampled_from(["float32", "float16", "int64", "uint8", "bool", "float64", "int8"]),
        ),
        min_size=1,
        max_size=6,
    ),
    cut=st.integers(0, 400),
)
def test_library_files_accepted_and_any_cut_refused(
    tmp_path_factory: pytest.TempPathFactory,
    shapes: dict[str, tuple[list[int], str]],
    cut: int,
) -> None:
    """What the library writes is read back exactly; the same file cut short is refused."""
    tmp = tmp_path_factory.mktemp("h")
    arrays = {n: np.zeros(s, dtype=d) for n, (s, d) in shapes.items()}
    data = save(arrays)
    found = check(tmp, data)
    assert isinstance(found, WeightsManifest)
    assert found.tensors == {n: (tuple(s), d) for n, (s, d) in shapes.items()}
    if cut < len(data):
        assert isinstance(check(tmp, data[:cut]), list)


# --- matching the weights to the graph ------------------------------------------------------

GRAPH: TensorSpecs = {
    **{name: (shape, "float32") for name, shape in TINY_SHAPES.items()},
    "position_ids": ((1, 512), "torch.int64"),
    "mask": ((4,), "bool"),
}


def test_matching_weights_fit() -> None:
    manifest = dict(GRAPH)
    manifest["out.bias"] = ((2,), "float16")  # widths within a kind are not compared
    manifest["position_ids"] = ((1, 512), "int32")
    assert match_weights(manifest, GRAPH) == []


def test_every_mismatch_is_listed() -> None:
    manifest: TensorSpecs = {
        "emb.weight": ((30522, 16), "float32"),
        "proj.weight": ((16, 8), "float32"),  # shape
        "out.weight": ((16, 2), "int64"),  # shape and kind
        "out.bias": ((2,), "float32"),
        "position_ids": ((1, 512), "float32"),  # a float for an integer buffer
        "mask": ((4,), "uint8"),  # an integer for a bool buffer
        "extra.scale": ((1,), "float32"),  # the graph has none
    }
    assert match_weights(manifest, GRAPH) == [
        "missing tensor 'proj.bias': the graph has a parameter or buffer of that name "
        "(shape (16,), float32), the weights file does not",
        "unexpected tensor 'extra.scale' (shape (1,), float32): the weights file has it, but "
        "the graph has no parameter or buffer of that name",
        "tensor 'mask': uint8 (integer) in the weights file, but the graph's is bool (bool): "
        "an integer tensor cannot stand for a bool one",
        "tensor 'out.weight': shape (16, 2) in the weights file, but (2, 16) in the graph",
        "tensor 'out.weight': int64 (integer) in the weights file, but the graph's is float32 "
        "(float): an integer tensor cannot stand for a float one",
        "tensor 'position_ids': float32 (float) in the weights file, but the graph's is int64 "
        "(integer): a float tensor cannot stand for an integer one",
        "tensor 'proj.weight': shape (16, 8) in the weights file, but (16, 16) in the graph",
    ]


def test_a_prefix_on_every_name_is_explained() -> None:
    manifest = {f"module.{name}": spec for name, spec in GRAPH.items()}
    found = match_weights(manifest, GRAPH)
    assert len(found) == 2 * len(GRAPH) + 1
    assert found[-1].startswith(f"{len(GRAPH)} name(s) in the weights file are the graph's names")
    assert "'module.' in front" in found[-1]


def test_dtype_kinds() -> None:
    assert [dtype_kind(d) for d in ("torch.bfloat16", "F16", "half", "uint8", "torch.bool")] == [
        "float",
        "float",
        "float",
        "integer",
        "bool",
    ]
    assert dtype_kind("quaternion") is None
    assert match_weights({"a": ((1,), "quaternion")}, {"a": ((1,), "float32")}) == [
        "tensor 'a': unknown dtype 'quaternion'"
    ]

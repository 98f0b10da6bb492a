"""Zip rules on their own: what is refused and why, and what extraction writes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from core.settings import LimitsSettings
from core.submissions.archive import check_zip, extract_zip
from tests.submission_helpers import zip_bytes

LIMITS = LimitsSettings()


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return path


def _problems(tmp_path: Path, data: bytes, **limits: object) -> list[str]:
    chosen = LimitsSettings(**limits) if limits else LIMITS  # type: ignore[arg-type]
    entries, problems = check_zip(_write(tmp_path, data), zip_name="p.zip", limits=chosen)
    assert not (entries and problems)
    return [f"{p.file}: {p.problem}" for p in problems]


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            [("a/SST-2/3.tsv", b"x"), ("b/SNLI/3.tsv", b"x")],
            [
                "p.zip: task folders must be at the top level or all inside one top-level "
                "folder; found a, b"
            ],
        ),
        (
            [("SST-2/3.tsv", b"x"), ("SST-2/3.tsv", b"y")],
            ["p.zip:SST-2/3.tsv: entry refused: a second entry named SST-2/3.tsv"],
        ),
        (
            [("p/SST-2/x/3.tsv", b"x")],
            [
                "p.zip:p/SST-2/x/3.tsv: entry refused: nested folder (at most "
                "<folder>/<TASK>/<file>)"
            ],
        ),
        (
            [("SST-2/3.tsv", b"x"), ("SST-2/model_to_eval.py", b"y"), ("SST-2/m.py", b"z")],
            [
                "p.zip:SST-2/m.py: entry refused: a second model file in SST-2 "
                "(SST-2/model_to_eval.py)"
            ],
        ),
        ([("C:\\SST-2.tsv", b"x")], ["p.zip:C:\\SST-2.tsv: entry refused: absolute path"]),
        ([("..\\SST-2.tsv", b"x")], ["p.zip:..\\SST-2.tsv: entry refused: parent path (..)"]),
        (
            [("README", b"x")],
            [
                "p.zip:README: entry refused: only .tsv prediction files, .py model files and "
                "one .safetensors weights file are accepted"
            ],
        ),
        ([("d/", b"")], ["p.zip: the archive holds no .tsv files"]),
    ],
)
def test_refused_layouts(
    tmp_path: Path, entries: list[tuple[str, bytes]], expected: list[str]
) -> None:
    assert _problems(tmp_path, zip_bytes(entries)) == expected


def test_size_limits(tmp_path: Path) -> None:
    data = zip_bytes(
        [("SST-2.a.tsv", b"1" * 600), ("SST-2.b.tsv", b"2" * 600)], compression=zipfile.ZIP_STORED
    )
    assert _problems(tmp_path, data, prediction_file_bytes=500) == [
        "p.zip:SST-2.a.tsv: entry refused: 600 bytes uncompressed, the limit is 500",
        "p.zip:SST-2.b.tsv: entry refused: 600 bytes uncompressed, the limit is 500",
    ]
    assert _problems(tmp_path, data, zip_max_uncompressed_bytes=1000) == [
        "p.zip: the entries add up to 1,200 bytes uncompressed, the limit is 1,000"
    ]
    assert _problems(tmp_path, data, zip_max_entries=1) == [
        "p.zip: the archive has 2 entries, the limit is 1"
    ]


def test_not_a_zip_and_encrypted(tmp_path: Path) -> None:
    assert _problems(tmp_path, b"PK\x03\x04 nonsense")[0].startswith(
        "p.zip: not a readable zip archive"
    )
    buf = io.BytesIO(zip_bytes([("SST-2.tsv", b"x")]))
    raw = bytearray(buf.getvalue())
    # Set the "encrypted" flag in the central directory entry (offset 8 of its header).
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 8] |= 0x1
    assert _problems(tmp_path, bytes(raw)) == ["p.zip:SST-2.tsv: entry refused: encrypted"]


def test_extraction_uses_neutral_names_and_stops_at_the_declared_size(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    data = zip_bytes([("preds/", b""), ("preds/SST-2.tsv", b"index\tprediction\n")])
    files, problems = extract_zip(_write(tmp_path, data), dest, zip_name="p.zip", limits=LIMITS)
    assert problems == []
    assert [(f.name, f.path.name, f.path.read_bytes()) for f in files] == [
        ("preds/SST-2.tsv", "zip-0.tsv", b"index\tprediction\n")
    ]
    # A header that claims fewer bytes than the data holds: the CRC check refuses the entry.
    raw = bytearray(zip_bytes([("SST-2.tsv", b"0123456789")], compression=zipfile.ZIP_STORED))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.find(signature)
        raw[at + offset : at + offset + 4] = (4).to_bytes(4, "little")
    files, problems = extract_zip(
        _write(tmp_path, bytes(raw)), dest, zip_name="p.zip", limits=LIMITS
    )
    assert files == []
    assert problems[0].problem.startswith("entry refused: unreadable")

"""Builders for submission tests: real prediction files, zips (good and hostile), what is on disk."""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Result, ResultCost, Submission, SubmissionFile
from core.settings import REPO_ROOT
from tests.conftest import ELUE_DIR
from tests.helpers import noisy_predictions, raw_gold

MODELS = Path(__file__).parent / "models"
TINY_MODEL = MODELS / "tiny_static.py"
EXAMPLES = REPO_ROOT / "examples"
NO_ENTIRE_MODEL = b"import torch\n\nmodel = torch.nn.Linear(2, 2)\n"


def predictions_text(task: str, seed: int = 1, *, header: str = "index\tprediction") -> str:
    """A valid prediction file for `task`: the gold labels with seeded noise."""
    preds = noisy_predictions(raw_gold(ELUE_DIR, task), task, seed=seed)
    return "\n".join([header, *(f"{i}\t{p}" for i, p in enumerate(preds))]) + "\n"


def predictions_bytes(task: str, seed: int = 1) -> bytes:
    return predictions_text(task, seed).encode()


def with_bad_line(text: str, line: int, value: str) -> bytes:
    """The file with the prediction on physical line `line` (1-based) replaced by `value`."""
    lines = text.split("\n")
    index, _ = lines[line - 1].split("\t")
    lines[line - 1] = f"{index}\t{value}"
    return "\n".join(lines).encode()


def zip_bytes(
    entries: list[tuple[str, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    symlinks: tuple[str, ...] = (),
) -> bytes:
    """A zip archive; names in `symlinks` are written as symbolic links (Unix mode in the header)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            info.create_system = 3
            mode = (stat.S_IFLNK | 0o777) if name in symlinks else (stat.S_IFREG | 0o644)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


@dataclass(frozen=True)
class Footprint:
    """What a request may leave behind: rows, blobs, staged files."""

    submissions: int
    files: int
    results: int
    blobs: int
    staged: int


def blob_files(uploads: Path) -> list[Path]:
    """Blobs in the store (named by their sha256), not the lock file."""
    if not uploads.is_dir():
        return []
    return [p for p in uploads.rglob("*") if p.is_file() and len(p.name) == 64]


def footprint(session: Session, data_dir: Path) -> Footprint:
    staging = data_dir / "staging"
    count = lambda model: session.scalar(select(func.count()).select_from(model)) or 0  # noqa: E731
    return Footprint(
        submissions=count(Submission),
        files=count(SubmissionFile),
        results=count(Result) + count(ResultCost),
        blobs=len(blob_files(data_dir / "uploads")),
        staged=sum(1 for _ in staging.rglob("*")) if staging.is_dir() else 0,
    )

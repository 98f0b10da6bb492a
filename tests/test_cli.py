"""The operator CLI, run as a subprocess the way an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import noisy_predictions, raw_gold, write_predictions

PB = Path(sys.executable).with_name("paretoboard")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PB), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("cli-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOBOARD_")}
    env["PARETOBOARD_STORAGE__DATA_DIR"] = str(data)
    return env


def test_operator_workflow(cli_env: dict[str, str], elue_dir: Path, tmp_path: Path) -> None:
    up = _run(["db", "upgrade"], cli_env)
    assert up.returncode == 0, up.stderr
    assert (Path(cli_env["PARETOBOARD_STORAGE__DATA_DIR"]) / "paretoboard.db").is_file()

    first = _run(["tasks", "import", str(elue_dir)], cli_env)
    assert first.returncode == 0, first.stderr
    assert "SST-2: created (2210 test rows)" in first.stdout
    again = _run(["tasks", "import", str(elue_dir)], cli_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("unchanged") == 5

    listing = _run(["tasks", "list"], cli_env)
    assert listing.returncode == 0
    assert "SNLI" in listing.stdout
    assert "9824" in listing.stdout

    gold = raw_gold(elue_dir, "MRPC")
    good = write_predictions(tmp_path / "MRPC.tsv", noisy_predictions(gold, "MRPC", seed=3))
    scored = _run(["score", "MRPC", str(good)], cli_env)
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.startswith("MRPC: ")
    assert "accuracy=" in scored.stdout
    assert "f1=" in scored.stdout

    bad = tmp_path / "bad.tsv"
    bad.write_text("index\tprediction\n0\t1\n0\t1\n5000\tx\n")
    refused = _run(["score", "MRPC", str(bad)], cli_env)
    assert refused.returncode == 1
    assert "bad.tsv:3" in refused.stderr  # duplicate index names its line
    assert "bad.tsv:4" in refused.stderr  # out of range

    unknown = _run(["score", "QNLI", str(good)], cli_env)
    assert unknown.returncode == 1
    assert "Unknown task" in unknown.stderr

"""The light client (`client/`, paretoboard-client) installed into a fresh virtual environment
without torch or the server's code, driven as a subprocess against a live server (uvicorn, Redis,
a Celery worker: tests/test_client_cli.py's `server`); and `paretoboard count`, the server's
counter run locally, giving the numbers the server stores."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.submission_helpers import TINY_MODEL, predictions_text
from tests.test_client_cli import Server
from tests.test_client_cli import server as server  # the live server (module-scoped fixture)

REPO = Path(__file__).resolve().parents[1]
FULL_PB = Path(sys.executable).with_name("paretoboard")


def _closure(names: list[str]) -> list[md.Distribution]:
    """The installed distributions `names` need, with their own requirements (markers applied)."""
    seen: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        dist = md.distribution(name)
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def client_venv(tmp: Path) -> Path:
    """A fresh venv holding the client's wheel (built here from ./client) and, through a .pth
    file, only the installed distributions its requirements name: no torch, no server code, no
    index or network."""
    source = tmp / "client-src"
    shutil.copytree(REPO / "client", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    wheels = tmp / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(source),
            "-w",
            str(wheels),
        ],
        check=True,
        timeout=300,
    )
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    [wheel] = wheels.glob("paretoboard_client-*.whl")
    deps = tmp / "deps"
    deps.mkdir()
    with zipfile.ZipFile(wheel) as archive:  # the client's own requirements, from its wheel
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = archive.read(name).decode()
    wanted = [
        Requirement(line.split(":", 1)[1]).name
        for line in meta.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    assert sorted(wanted) == ["httpx", "typer"]  # an HTTP library and the CLI toolkit, only
    assert "Requires-Python: >=3.9" in meta
    for dist in _closure(wanted):
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            origin = Path(str(dist.locate_file(top)))
            if top not in ("..", "bin") and origin.exists() and not (deps / top).exists():
                (deps / top).symlink_to(origin)
    [site] = (venv / "lib").glob("python3*/site-packages")
    (site / "client-deps.pth").write_text(f"{deps}\n")
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    return venv


@pytest.mark.slow  # a venv, a wheel build and a live server: about a minute
def test_light_client_in_a_fresh_venv(server: Server, tmp_path: Path) -> None:
    venv = client_venv(tmp_path)
    pb = venv / "bin" / "paretoboard"

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(pb), *args],
            env={**server.env, **env},
            cwd=tmp_path,  # not the repository: nothing of the server is importable
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.util as u; print([m for m in "
            "('torch', 'numpy', 'core', 'server', 'web', 'worker', 'cli', 'fastapi') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert probe.stdout.strip() == "[]"
    pip_check = subprocess.run(
        [str(venv / "bin" / "pip"), "check"], capture_output=True, text=True, check=False
    )
    assert pip_check.returncode == 0, pip_check.stdout  # its requirements are all there

    shown = run("--help")
    assert shown.returncode == 0, shown.stderr
    for command in ("submit", "status", "results", "count"):
        assert command in shown.stdout
    counted = run("count", str(TINY_MODEL), "--task", "SST-2")
    assert counted.returncode == 2
    assert "counting needs the full install" in counted.stderr

    predictions = tmp_path / "SST-2.l6.tsv"
    predictions.write_text(predictions_text("SST-2", seed=7))
    slip = tmp_path / "slip.txt"
    slip.write_text("SST-2.l6.tsv 6788 67\n")
    refused = run(
        "submit",
        "--check",
        "--costs",
        str(slip),
        "--flops-unit",
        "FLOPs",
        str(predictions),
        PARETOBOARD_TOKEN=server.token,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert (
        "line 1 [costs_table]: SST-2.l6.tsv: FLOPs per sample: 6,788 FLOPs is below"
        in refused.stderr
    )
    assert "did you mean 6,788 MFLOPs (= 6,788,000,000 FLOPs)?" in refused.stderr

    costs = tmp_path / "costs.json"
    costs.write_text(
        json.dumps(
            [
                {
                    "file": "SST-2.l6.tsv",
                    "flops": 6788,
                    "flops_unit": "MFLOPs",
                    "params": 67,
                    "params_unit": "M",
                }
            ]
        )
    )
    submitted = run(
        "submit",
        "--costs",
        str(costs),
        "--name",
        "type 1 from the light client",
        "--wait",
        "--interval",
        "0.5",
        str(predictions),
        PARETOBOARD_TOKEN=server.token,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    sid = int(submitted.stdout.split()[1].rstrip(":"))
    assert "done: Scored; FLOPs and parameters are self-reported" in submitted.stdout
    row = next(line for line in submitted.stdout.splitlines() if line.startswith("SST-2"))
    assert re.search(r"SST-2\s+l6\s+\d+\.\d\d\s+6,788\.0\s+-\s+67,000,000\s+self_reported", row), (
        row
    )
    status = run("status", str(sid), PARETOBOARD_TOKEN=server.token)
    assert status.returncode == 0, status.stderr
    assert f"submission {sid} (type 1 from the light client): [5/5] done" in status.stdout

    # A measured submission from the light client, counted by the server ...
    measured = run(
        "submit",
        "--model",
        str(TINY_MODEL),
        "--name",
        "measured from the light client",
        "--wait",
        "--interval",
        "0.5",
        str(predictions),
        PARETOBOARD_TOKEN=server.token,
    )
    assert measured.returncode == 0, measured.stdout + measured.stderr
    mid = int(measured.stdout.split()[1].rstrip(":"))
    stored = json.loads(run("results", str(mid), "--json", PARETOBOARD_TOKEN=server.token).stdout)
    [point] = stored["results"][0]["points"]
    # ... and `paretoboard count` of the full install, on the same task data: the same numbers.
    local = subprocess.run(
        [str(FULL_PB), "count", str(TINY_MODEL), str(predictions), "--task", "sst-2", "--json"],
        env={**os.environ, **server.service_env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert local.returncode == 0, local.stdout + local.stderr
    report = json.loads(local.stdout)
    [counted_point] = report["points"]
    assert counted_point["flops_mean"] == point["flops"]["mean"]
    assert counted_point["flops_elue_mean"] == point["flops"]["elue_mean"]
    assert report["params"] == point["params"] == stored["params"]
    assert (report["counter_version"], report["rule_hash"]) == (
        point["flops"]["counter_version"],
        point["flops"]["rule_hash"],
    )


def test_client_config_without_tomllib_and_line_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python < 3.11 has no tomllib: the client reads the config's `key = "value"` lines."""
    from paretoboard_client import commands

    monkeypatch.setattr(commands, "tomllib", None)
    text = '# mine\nserver = "https://pb.example.org"  # the lab\'s\ntoken = "pb_x"\n'
    assert commands._read_toml(text) == {"server": "https://pb.example.org", "token": "pb_x"}
    with pytest.raises(ValueError, match='line 1: expected key = "value"'):
        commands._read_toml("server = [1]\n")
    assert (
        commands.format_problem({"file": None, "line": 2, "column": "costs_table", "problem": "x"})
        == "line 2 [costs_table]: x"
    )
    assert commands.format_problem({"file": "a.tsv", "line": 3, "problem": "y"}) == "a.tsv:3: y"

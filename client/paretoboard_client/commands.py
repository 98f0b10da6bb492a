"""`paretoboard submit / status / results`: the submitter's client for a paretoboard server.

The server and API token come from the options, else the environment (`PARETOBOARD_SERVER`,
`PARETOBOARD_TOKEN`), else `~/.config/paretoboard/client.toml` (`$XDG_CONFIG_HOME` is honoured):

    server = "https://paretoboard.example.org"
    token = "pb_..."

Files are streamed from disk (httpx reads them in chunks), never read whole into memory.
This module is the light client's (`pip install paretoboard-client`: httpx and typer only,
Python 3.9 or newer) and the full install's: the command signatures use `Optional` because typer
evaluates them at run time.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, List, NoReturn, Optional

try:
    import tomllib
except ImportError:  # Python < 3.11: the config file's `key = "value"` lines are read by hand
    tomllib = None  # type: ignore[assignment]

import httpx
import typer

DEFAULT_SERVER = "http://127.0.0.1:8000"
API = "/api/v1"
FINAL = {"done", "failed", "withdrawn"}


@dataclass(frozen=True)
class ClientConfig:
    server: str
    token: str | None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "paretoboard" / "client.toml"


def load_config(server: str | None = None, token: str | None = None) -> ClientConfig:
    """Options first, then environment variables, then the config file."""
    stored: dict[str, Any] = {}
    path = config_path()
    if path.is_file():
        try:
            stored = _read_toml(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
            _die(f"cannot read {path}: {exc}")
    server = (
        server or os.environ.get("PARETOBOARD_SERVER") or stored.get("server") or DEFAULT_SERVER
    )
    token = token or os.environ.get("PARETOBOARD_TOKEN") or stored.get("token")
    return ClientConfig(str(server).rstrip("/"), str(token) if token else None)


_STRING_LINE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*"([^"\\]*)"\s*(#.*)?$')


def _read_toml(text: str) -> dict[str, Any]:
    """The config file: TOML (tomllib), or on Python < 3.11 its plain `key = "value"` lines."""
    if tomllib is not None:
        return tomllib.loads(text)
    values: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _STRING_LINE.match(line)
        if match is None:
            raise ValueError(f'line {number}: expected key = "value" (Python < 3.11 reads no more)')
        values[match[1]] = match[2]
    return values


def _die(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _client(config: ClientConfig) -> httpx.Client:
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    return httpx.Client(
        base_url=config.server,
        headers=headers,
        timeout=httpx.Timeout(60.0, read=900.0),  # a large upload is checked before the answer
        follow_redirects=False,
    )


def format_problem(detail: dict[str, Any]) -> str:
    """`file:line [column]: problem`, as the server's problems read everywhere."""
    where = ":".join(str(detail[k]) for k in ("file", "line") if detail.get(k) is not None)
    if detail.get("file") is None and detail.get("line") is not None:
        where = f"line {detail['line']}"  # a line of a text field (the costs table)
    column = f" [{detail['column']}]" if detail.get("column") else ""
    problem = detail.get("problem", "")
    return f"{where}{column}: {problem}" if where else f"{problem}{column}"


def _fail_response(response: httpx.Response) -> NoReturn:
    """Print the server's error (message and every problem) and exit 1."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        _die(f"HTTP {response.status_code}: {response.text[:500]}", 1)
    typer.echo(f"error: {error.get('message', '')} (HTTP {response.status_code})", err=True)
    for detail in error.get("details") or []:
        typer.echo(f"  {format_problem(detail)}", err=True)
    if response.status_code in (429, 503) and "retry-after" in response.headers:
        typer.echo(f"  retry after {response.headers['retry-after']} seconds", err=True)
    raise typer.Exit(code=1)


def _request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        _die(f"cannot reach {client.base_url}: {exc}")


MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After on a busy server is waited this long


def _retry_after(response: httpx.Response) -> Optional[float]:
    """Seconds to wait before sending again: a 503 with Retry-After in seconds (the server was
    busy and stored nothing); None for any other answer."""
    value = response.headers.get("retry-after", "").strip()
    if response.status_code != 503 or not value.isdigit():
        return None
    return min(float(value), MAX_RETRY_AFTER)


def _post_retrying(
    client: httpx.Client,
    url: str,
    *,
    data: dict[str, str],
    parts: List[tuple[str, tuple[str, BinaryIO, str]]],
    retries: int,
) -> httpx.Response:
    """POST the upload; while the server answers 503 with Retry-After, wait that long (with a
    little jitter, so refused clients do not all come back at once) and send it again, at most
    `retries` times."""
    tries = 0
    while True:
        for _, (_, handle, _) in parts:
            handle.seek(0)  # the previous try read the files to their end
        response = _request(client, "POST", url, data=data, files=parts)
        delay = _retry_after(response)
        if delay is None or tries >= retries:
            return response
        tries += 1
        typer.echo(
            f"the server is busy (HTTP 503); sending again in {delay:.0f} s "
            f"(retry {tries} of {retries})",
            err=True,
        )
        time.sleep(delay + random.uniform(0, 1))


def _upload(
    stack: ExitStack,
    model: Optional[Path],
    files: List[Path],
    tokenizer: Optional[Path],
    weights: Optional[Path] = None,
) -> List[tuple[str, tuple[str, BinaryIO, str]]]:
    parts: list[tuple[str, tuple[str, BinaryIO, str]]] = []
    for path in [p for p in (model, tokenizer, weights, *files) if p is not None]:
        if not path.is_file():
            _die(f"no such file: {path}")
    if model is not None:
        parts.append(
            ("model", (model.name, stack.enter_context(model.open("rb")), "text/x-python"))
        )
    if tokenizer is not None:
        parts.append(
            (
                "tokenizer",
                (tokenizer.name, stack.enter_context(tokenizer.open("rb")), "application/json"),
            )
        )
    if weights is not None:
        # Streamed from disk like the other files; the server checks it is safetensors.
        parts.append(
            (
                "weights",
                (weights.name, stack.enter_context(weights.open("rb")), "application/octet-stream"),
            )
        )
    for path in files:
        kind = "application/zip" if path.suffix.lower() == ".zip" else "text/tab-separated-values"
        parts.append(("predictions", (path.name, stack.enter_context(path.open("rb")), kind)))
    return parts


def _show_summary(summary: dict[str, Any]) -> None:
    typer.echo(f"OK: {len(summary['files'])} prediction file(s), {summary['rows']:,} rows")
    for f in summary["files"]:
        point = f" point {f['point']!r}" if f["point"] else ""
        typer.echo(f"  {f['file']}: {f['task']}{point}, {f['rows']:,} rows ({f['format']})")
    for f in summary["files"]:
        if f.get("self_reported_flops") is not None:
            typer.echo(
                f"  {f['file']}: self-reported {f['self_reported_flops'] / 1e6:,.1f} MFLOPs per "
                f"sample, {f['self_reported_params']:,} parameters"
            )
    typer.echo(f"  model: {summary['model']}; tokenizer: {summary['tokenizer']}")
    if weights := summary.get("weights"):
        typer.echo(
            f"  weights: {weights['file']}: {weights['tensors']:,} tensor(s), "
            f"{weights['elements']:,} values, {weights['size']:,} bytes"
        )
    if summary.get("model_check"):
        typer.echo(f"  model check: {summary['model_check']}")
    for q in summary.get("quota") or []:
        typer.echo(f"  quota {quota_line(q)}")
    typer.echo("  (a check stores nothing and uses no quota)")


def quota_line(q: dict[str, Any]) -> str:
    """One task's remaining daily quota, as the check reports it."""
    text = f"{q['task']}: {q['remaining']} of {q['limit']} left in 24 hours ({q['used']} used)"
    if q.get("next_slot_at") and q["used"]:
        text += f"; the oldest frees at {q['next_slot_at']}"
    return text


def _mflops(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:,.1f}"


def results_table(submission: dict[str, Any]) -> str:
    """The per-point results as a plain-text table."""
    header = [
        "task",
        "point",
        "performance",
        "MFLOPs/sample",
        "ELUE MFLOPs",
        "params",
        "cost",
        "vs baseline",
    ]
    rows = [header]
    for task in submission["results"]:
        for p in task["points"]:
            perf = p["performance"]
            delta = p["baseline_delta"]
            flops = p["flops"]
            incomplete = bool(flops.get("incomplete"))
            status = p["cost_status"]
            if incomplete:
                status = "incomplete (a lower bound, not scored)"
            elif flops.get("disagrees"):
                status += " (fvcore differs >1%)"
            rows.append(
                [
                    task["task"],
                    p["point"] or "-",
                    "-" if perf is None else f"{perf:.2f}",
                    (">= " if incomplete else "") + _mflops(flops["mean"]),
                    _mflops(flops.get("elue_mean")),
                    "-" if p["params"] is None else f"{p['params']:,}",
                    status,
                    "-" if delta is None else f"{delta:+.2f}",
                ]
            )
    if len(rows) == 1:
        return "(no results yet)"
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def _status_line(sub: dict[str, Any]) -> str:
    stage = sub["stage"]
    step = f"[{stage['index']}/{stage['total']}] " if stage["index"] else ""
    queue = sub.get("queue_position")
    ahead = f", {queue} ahead" if queue else ""
    place = sub.get("cost_queue")
    if place and place.get("state") == "waiting":
        ahead += f" (waiting for one of your {place['jobs_per_user']} cost jobs to finish)"
    if place and place.get("estimated_wait_seconds") is not None:
        ahead += f", about {place['estimated_wait_seconds']:.0f}s to wait"
    elapsed = sub["timings"].get("elapsed_seconds")
    took = f" ({elapsed:.0f}s)" if elapsed is not None else ""
    return f"{step}{sub['state']}{ahead}: {sub['state_message']}{took}"


def _get_submission(client: httpx.Client, submission_id: int) -> dict[str, Any]:
    response = _request(client, "GET", f"{API}/submissions/{submission_id}")
    if response.status_code != 200:
        _fail_response(response)
    body: dict[str, Any] = response.json()
    return body


def _describe_end(sub: dict[str, Any]) -> None:
    if sub["state"] == "failed":
        error = sub.get("error") or {}
        typer.echo(
            f"failed in {error.get('failed_stage') or '?'} ({error.get('fault') or '?'} fault): "
            f"{error.get('message', '')}",
            err=True,
        )
        if sub.get("error_detail"):
            typer.echo(sub["error_detail"], err=True)


def _wait(client: httpx.Client, submission_id: int, interval: float) -> dict[str, Any]:
    tty = sys.stdout.isatty()
    last = ""
    while True:
        sub = _get_submission(client, submission_id)
        line = _status_line(sub)
        if tty:
            typer.echo("\r\033[K" + line, nl=False)
        elif line.split(" (")[0] != last.split(" (")[0]:
            typer.echo(line)
        last = line
        if sub["state"] in FINAL:
            if tty:
                typer.echo("")
            return sub
        time.sleep(interval)


def submit(
    files: List[Path] = typer.Argument(
        ...,
        help="prediction files <TASK>.tsv / <TASK>.<point>.tsv, ElasticBERT's <TASK>_<point>.tsv "
        "with <TASK>_infer_exit_layer_<point>.tsv, or one .zip of them (flat, or ELUE's one folder "
        "per task with <point>.tsv files and optionally model_to_eval.py)",
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", help="the model file (.py); optional when the zip holds model_to_eval.py"
    ),
    name: Optional[str] = typer.Option(None, help="submission name (default: model name and time)"),
    description: str = typer.Option("", help="a description shown with the results"),
    paper_url: Optional[str] = typer.Option(None, "--paper-url"),
    code_url: Optional[str] = typer.Option(None, "--code-url"),
    private: bool = typer.Option(False, "--private", help="visible only to you"),
    tokenizer: Optional[Path] = typer.Option(None, help="a tokenizers JSON file"),
    tokenizer_name: Optional[str] = typer.Option(None, "--tokenizer-name"),
    weights: Optional[Path] = typer.Option(
        None,
        "--weights",
        help="the model's weights: a .safetensors file (safetensors.torch.save_file"
        "(model.state_dict(), ...)); no pickles",
    ),
    costs: Optional[Path] = typer.Option(
        None,
        "--costs",
        help="ELUE's Type 1, instead of --model: each prediction file's FLOPs per sample and "
        "parameters, self-reported: a JSON list of {file, flops, flops_unit, params, "
        "params_unit}, or a table of `FILE FLOPS PARAMS` lines in --flops-unit and --params-unit",
    ),
    flops_unit: str = typer.Option(
        "MFLOPs", "--flops-unit", help="the unit of a --costs table's FLOPs (FLOPs, MFLOPs, GFLOPs)"
    ),
    params_unit: str = typer.Option(
        "M", "--params-unit", help="the unit of a --costs table's parameters (params, or M)"
    ),
    check: bool = typer.Option(False, "--check", help="only check the files; store nothing"),
    wait: bool = typer.Option(False, "--wait", help="follow the evaluation until it finishes"),
    interval: float = typer.Option(2.0, help="seconds between polls with --wait"),
    retries: int = typer.Option(
        20,
        min=0,
        help="times to send the upload again when the server answers 503 with Retry-After "
        "(busy with other uploads; nothing was stored), after the time it names",
    ),
    server: Optional[str] = typer.Option(None, help="server URL (or PARETOBOARD_SERVER)"),
    token: Optional[str] = typer.Option(None, help="API token (or PARETOBOARD_TOKEN)"),
) -> None:
    """Submit prediction files and a model file, or self-reported --costs (or only --check)."""
    config = load_config(server, token)
    if config.token is None:
        _die(
            "no API token: pass --token, set PARETOBOARD_TOKEN or write it to " + str(config_path())
        )
    fields: dict[str, str] = {"description": description}
    if not check:
        stem = model.stem if model is not None else "submission"
        fields["name"] = name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    elif name:
        fields["name"] = name
    fields["visibility"] = "private" if private else "public"
    for key, value in (
        ("paper_url", paper_url),
        ("code_url", code_url),
        ("tokenizer_name", tokenizer_name),
    ):
        if value:
            fields[key] = value
    if costs is not None:
        fields.update(_costs_fields(costs, flops_unit, params_unit))
    with _client(config) as client, ExitStack() as stack:
        parts = _upload(stack, model, files, tokenizer, weights)
        url = f"{API}/submissions/validate" if check else f"{API}/submissions"
        response = _post_retrying(client, url, data=fields, parts=parts, retries=retries)
        if response.status_code not in (200, 202):
            _fail_response(response)
        body = response.json()
        if check:
            _show_summary(body)
            return
        typer.echo(f"submission {body['id']}: {config.server}{body['url']}")
        if not body.get("queued", True):
            typer.echo("(the queue is unreachable right now; it will be picked up later)")
        if not wait:
            return
        final = _wait(client, int(body["id"]), interval)
        _describe_end(final)
        typer.echo(results_table(final))
        if final["state"] != "done":
            raise typer.Exit(code=1)


def _costs_fields(path: Path, flops_unit: str, params_unit: str) -> dict[str, str]:
    """The form fields of a --costs file: JSON as `costs`, a table as `costs_table`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _die(f"cannot read {path}: {exc}")
    if text.lstrip().startswith(("[", "{")):
        return {"costs": text}
    return {
        "costs_table": text,
        "costs_flops_unit": flops_unit,
        "costs_params_unit": params_unit,
    }


def status(
    submission_id: int = typer.Argument(..., help="submission id"),
    server: Optional[str] = typer.Option(None, help="server URL (or PARETOBOARD_SERVER)"),
    token: Optional[str] = typer.Option(None, help="API token (or PARETOBOARD_TOKEN)"),
) -> None:
    """Print a submission's state, stage, queue position and timings."""
    config = load_config(server, token)
    with _client(config) as client:
        sub = _get_submission(client, submission_id)
    typer.echo(f"submission {sub['id']} ({sub['name']}): {_status_line(sub)}")
    timings = sub["timings"]
    for key in ("created_at", "started_at", "finished_at"):
        if timings.get(key):
            typer.echo(f"  {key.removesuffix('_at')}: {timings[key]}")
    for weights in sub.get("weights") or []:
        task = f" ({weights['task']})" if weights.get("task") else ""
        tensors = f", {weights['tensors']:,} tensor(s)" if weights.get("tensors") else ""
        typer.echo(
            f"  weights: {weights['file']}{task}{tensors}, {weights['size']:,} bytes, "
            f"sha256 {weights['sha256']}"
        )
    _describe_end(sub)


def results(
    submission_id: int = typer.Argument(..., help="submission id"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    server: Optional[str] = typer.Option(None, help="server URL (or PARETOBOARD_SERVER)"),
    token: Optional[str] = typer.Option(None, help="API token (or PARETOBOARD_TOKEN)"),
) -> None:
    """Print a submission's results per task and point."""
    config = load_config(server, token)
    with _client(config) as client:
        sub = _get_submission(client, submission_id)
    if as_json:
        keys = ("id", "name", "kind", "state", "params", "results")
        typer.echo(json.dumps({k: sub[k] for k in keys}, indent=2))
        return
    typer.echo(f"submission {sub['id']} ({sub['name']}): {sub['state']}")
    typer.echo(results_table(sub))

"""Benchmark: verification (the trusted runner) of BERT-base on the ELUE test sets.

    .venv/bin/python -m bench.bench_verify [--elue-dir ../shared/data/elue] [--subset 200]
        [--threads 2] [--device cpu|cuda] [--sandbox]

Captures examples/bert_base_eager.py (our own file: in this process, or with `--sandbox` as a
cost worker does), saves random weights as safetensors, tokenises each task's test inputs with
bert-base-uncased as the platform does, and times, side by side on the same samples:

- the trusted runner (`worker.verify`): the captured graph executed operator by operator with
  the weights, samples of one length batched with vmap (`--sandbox`: the whole
  `run_verification`, weights check and sandbox start included);
- the alternative a submitter would run: the eager PyTorch module, one sample at a time.

With `--subset N` (default 200) each task is timed on N random samples and the full test set
is extrapolated from the samples per second (the samples are drawn across the whole length
distribution). `--subset 0` runs everything. Prints the agreement of the two (argmax), samples
per second, the ratio, and the extrapolation; numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import runpy
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from core.settings import REPO_ROOT, Settings
from core.tasks.files import read_task_folder
from core.tokenizers import cached_tokenizer, encode

MODEL = REPO_ROOT / "examples" / "bert_base_eager.py"
TASKS = ("SST-2", "SNLI", "SciTail", "MRPC", "STS-B")


def _inputs(elue: Path, task: str, tokenizer: Any) -> tuple[list[list[int]], list[int] | None]:
    texts = [e.texts for e in read_task_folder(elue / task).test]
    if texts and len(texts[0]) == 2:
        enc = tokenizer.encode_batch([(a, b) for a, b in texts])
        return [e.ids for e in enc], [e.type_ids.count(0) for e in enc]
    return encode(tokenizer, texts), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elue-dir", type=Path, default=REPO_ROOT.parent / "shared/data/elue")
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=REPO_ROOT.parent / "shared/data/tokenizers/bert-base-uncased/tokenizer.json",
    )
    parser.add_argument("--subset", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sandbox", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tokenizer = cached_tokenizer(args.tokenizer, max_tokens=512)

    from safetensors.torch import save_model

    from worker.capture import capture
    from worker.graphcount.graph import Capture
    from worker.verify import Program, Runner, run_entry

    ns = runpy.run_path(str(MODEL), run_name="__paretoboard_model__")
    model = ns["entire_model"].eval()
    tmp = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    weights = tmp / "w.safetensors"
    save_model(model, str(weights))
    start = time.perf_counter()
    raw = capture({"model": str(MODEL), "lengths": [8, 64]})
    print(f"capture (in process): {time.perf_counter() - start:.1f} s")
    cap = Capture.model_validate(json.loads(json.dumps(raw)))
    from safetensors.torch import load_file

    program = Program(cap, load_file(str(weights), device=str(device)), device)
    model = model.to(device)
    rng = random.Random(args.seed)
    totals = {"runner": 0.0, "eager": 0.0, "samples": 0, "full": 0, "full_runner": 0.0}
    print(
        f"device {device}, {args.threads} thread(s); subset {args.subset or 'all'} per task\n"
        f"{'task':8} {'samples':>8} {'runner s':>9} {'eager s':>9} {'runner/s':>9} "
        f"{'eager/s':>8} {'ratio':>6} {'agree':>6} {'full set':>9} {'extrap. s':>10}"
    )
    for task in TASKS:
        if not (args.elue_dir / task / "test.tsv").is_file():
            print(f"{task}: no test.tsv in {args.elue_dir}; skipped")
            continue
        ids, firsts = _inputs(args.elue_dir, task, tokenizer)
        full = len(ids)
        picks = sorted(rng.sample(range(full), args.subset)) if 0 < args.subset < full else None
        sub_ids = [ids[i] for i in picks] if picks else ids
        sub_first = ([firsts[i] for i in picks] if picks else firsts) if firsts else None
        entry = {"key": task, "width": 2}
        runner = Runner(program, tokens_per_batch=8192, deadline=time.monotonic() + 86400)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = run_entry(
                runner, entry, {"token_ids": sub_ids, "first_segments": sub_first}, repeats=0
            )
        if device.type == "cuda":
            torch.cuda.synchronize()
        runner_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        eager = []
        with torch.inference_mode():
            for i, x in enumerate(sub_ids):
                t = torch.tensor([x], device=device)
                types = torch.zeros_like(t)
                if sub_first is not None:
                    types[0, sub_first[i] :] = 1
                eager.append(
                    model(input_ids=t, attention_mask=torch.ones_like(t), token_type_ids=types)
                    .reshape(-1)
                    .argmax()
                    .item()
                )
        eager_s = time.perf_counter() - t0
        got = torch.tensor(out["outputs"]).argmax(dim=1).tolist()
        agree = sum(a == b for a, b in zip(got, eager, strict=True)) / len(eager)
        n = len(sub_ids)
        extrap = runner_s * full / n
        totals["runner"] += runner_s
        totals["eager"] += eager_s
        totals["samples"] += n
        totals["full"] += full
        totals["full_runner"] += extrap
        print(
            f"{task:8} {n:>8} {runner_s:>9.1f} {eager_s:>9.1f} {n / runner_s:>9.1f} "
            f"{n / eager_s:>8.1f} {eager_s / runner_s:>5.2f}x {agree:>6.1%} {full:>9} "
            f"{extrap:>10.0f}"
        )
    print(
        f"all      {totals['samples']:>8} {totals['runner']:>9.1f} {totals['eager']:>9.1f} "
        f"{totals['samples'] / max(totals['runner'], 1e-9):>9.1f} "
        f"{totals['samples'] / max(totals['eager'], 1e-9):>8.1f} "
        f"{totals['eager'] / max(totals['runner'], 1e-9):>5.2f}x {'':>6} {totals['full']:>9} "
        f"{totals['full_runner']:>10.0f}"
    )
    if args.sandbox:
        _sandboxed(args, tokenizer, weights)


def _sandboxed(args: argparse.Namespace, tokenizer: Any, weights: Path) -> None:
    """The whole verification as a cost worker runs it, on SST-2's subset."""
    from core.storage import LocalBlobStore
    from worker.counting_stage import CostJob, run_cost_job
    from worker.verification import VerifyJobEntry, VerifyRequest, VerifyTask, run_verification

    ids, _ = _inputs(args.elue_dir, "SST-2", tokenizer)
    ids = ids[: args.subset or len(ids)]
    settings = Settings()
    store = LocalBlobStore(Path(tempfile.mkdtemp(prefix="bench-verify-blobs-")))
    sha, _ = store.put_file(weights)
    lengths = [len(x) for x in ids]
    t0 = time.perf_counter()
    run = run_cost_job(
        MODEL.read_bytes(),
        CostJob(
            entries=[{"key": "s", "kind": "static", "lengths": lengths}], sizes={"s": len(ids)}
        ),
        settings,
        device=args.device,
    )
    capture_s = time.perf_counter() - t0
    assert run.capture is not None, run.failure
    t0 = time.perf_counter()
    checked = run_verification(
        run.capture,
        VerifyRequest(
            weights={"SST-2": sha},
            inputs={"SST-2": VerifyTask(token_ids=ids)},
            entries=[VerifyJobEntry(key="s", task="SST-2", width=2)],
        ),
        settings,
        device=args.device,
        store=store,
    )
    verify_s = time.perf_counter() - t0
    out = checked.output
    print(
        f"sandboxed: cost job (capture + count) {capture_s:.1f} s; verification of "
        f"{len(ids)} SST-2 samples {verify_s:.1f} s (runner inside: {out.seconds or 0:.1f} s, "
        f"peak memory {(out.peak_memory_bytes or 0) / 2**20:,.0f} MiB, hardware "
        f"{out.hardware.name if out.hardware else '?'}; weights problems: {len(out.problems)})"
    )
    entry = out.entries.get("s")
    if entry is not None and entry.latency:
        print(
            "latency at batch size 1: "
            + ", ".join(f"L={p.length}: {p.median_ms:.1f} ms" for p in entry.latency)
        )


if __name__ == "__main__":
    main()

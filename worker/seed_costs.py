"""FLOPs of the published ElasticBERT-base baseline where the paper gives none (`paretoboard seed`).

The real sandboxed cost job (`worker.counting_stage.run_cost_job`) counts
`examples/elasticbert_base.py` on each task's real test inputs, tokenized exactly as for a
measured submission (`counting_stage._task_inputs`: the registered bert-base-uncased tokenizer,
pairs encoded as pairs, truncation at `limits.max_tokens`), with one `exit_layer` entry per
(task, k) in which every sample exits after layer k: emb(L) + sum_{i<=k} [layer_i(L, 768) +
exit_i(768)]. The entries share one count cache, so each distinct (module, shape) is counted once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine

from core.db.session import transaction
from core.seed.baseline import FLOPS_MODEL, CountedFlops, FlopsRequest
from core.settings import REPO_ROOT, Settings
from core.storage import sha256_bytes
from core.tasks.service import get_task
from core.tokenizers import DEFAULT_TOKENIZER, registered_tokenizers
from worker.counting_stage import CostJob, _task_inputs, run_cost_job

log = logging.getLogger(__name__)
METHOD = (
    "exit_layer: examples/elasticbert_base.py captured in the sandbox (torch.export) and "
    "counted by the trusted counter, every sample exiting after layer k (emb + k x (layer_i + "
    "exit_i), read from entire_model's graph), at each sample's real token count"
)


class SeedCountError(RuntimeError):
    """The baseline's cost job did not produce a valid report."""


def _key(request: FlopsRequest) -> str:
    return f"baseline:{request.task}:{request.exit_layer}"


def count_baseline_flops(
    engine: Engine,
    settings: Settings,
    requests: Sequence[FlopsRequest],
    *,
    device: str = "cpu",
) -> dict[FlopsRequest, CountedFlops]:
    """Count every request in one sandbox run; SeedCountError if the job fails."""
    if not requests:
        return {}
    tokenizers = registered_tokenizers(settings.storage.tokenizers_dir)
    if DEFAULT_TOKENIZER not in tokenizers:
        raise SeedCountError(
            f"tokenizer {DEFAULT_TOKENIZER!r} is not registered in {settings.storage.tokenizers_dir}"
        )
    model = (REPO_ROOT / FLOPS_MODEL).read_bytes()
    model_sha = sha256_bytes(model)
    job = CostJob()
    test_sha: dict[str, str] = {}
    with transaction(engine) as session:  # read-only and short: the count runs outside it
        inputs = {}
        for request in requests:
            if request.task not in inputs:
                task = get_task(session, request.task)
                inputs[request.task] = _task_inputs(
                    session, task, tokenizers[DEFAULT_TOKENIZER], settings
                )
                test_sha[request.task] = task.test_sha256
            lengths = inputs[request.task].lengths
            key = _key(request)
            job.entries.append(
                {
                    "key": key,
                    "kind": "exit_layer",
                    "exit_layers": [request.exit_layer] * len(lengths),
                    "lengths": lengths,
                    "file": f"{request.task} baseline, exit at layer {request.exit_layer}",
                }
            )
            job.sizes[key] = len(lengths)
    log.info("counting %d baseline entries in the sandbox (%s)", len(job.entries), device)
    run = run_cost_job(model, job, settings, device=device)
    if run.failure is not None or run.output is None:
        detail = run.failure or "no output"
        if run.output is not None and run.output.error is not None:
            detail += f"\n{run.output.error.traceback[-4000:]}"
        raise SeedCountError(f"counting the baseline's FLOPs failed: {detail}\n{run.log[-4000:]}")
    output = run.output
    counted: dict[FlopsRequest, CountedFlops] = {}
    for request in requests:
        entry = output.entries[_key(request)]
        counted[request] = CountedFlops(
            per_sample_flops=entry.per_sample_flops,
            per_sample_flops_without_norm=entry.per_sample_flops_without_norm,
            model_sha256=model_sha,
            tokenizer=DEFAULT_TOKENIZER,
            test_sha256=test_sha[request.task],
            method=METHOD,
            device=output.device or device,
            versions=dict(output.versions),
            per_module=dict(entry.per_module),
            per_operator=dict(entry.per_operator),
            uncounted=dict(entry.uncounted),
            per_sample_flops_elue=entry.per_sample_flops_elue,
            counter_version=output.counter_version,
            rule_hash=output.rule_hash,
            incomplete=list(entry.incomplete),
            disagrees=not entry.all_agree,
            details={
                "n_counts": entry.n_counts,
                "n_traces": entry.n_traces,
                "cross_check_agrees": entry.all_agree,
                "disagreements": [d.model_dump() for d in entry.disagreements],
                "count_seconds": entry.seconds,
                "job_seconds": output.seconds,
                "notes": list(output.notes),
            },
        )
    return counted

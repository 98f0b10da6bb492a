"""The first cost counter (per distinct shape, inside the sandbox), and the model-file loader.

Submissions are no longer counted here: the sandbox only captures the graph
(`worker/capture.py`, which uses `loading.load_model_file` and `model_call` from this package)
and the trusted counter (`worker/graphcount`) makes every stored number. The counting half of
this package (`count`, `plans`, `forkpool`, `handles`, with `worker/cost_job.py`) is kept only
for `bench/bench_counting.py`, which times it side by side with the trusted counter.

Runs inside the sandbox on untrusted model files: only torch, fvcore, numpy and the stdlib (and
`core.errors`). Takes plain data, returns dataclasses that `dataclasses.asdict` turns into JSON.
The model file contract is documented in examples/README.md.

    loaded = load_model_file(path)                      # ModelFileError if the file is wrong
    count_parameters(loaded.entire_model)               # shared tensors once
    count_module(loaded, None, (128,))                  # entire_model on 128 token ids
    count_module(loaded, "layer_1", (128, 768))         # one module_list entry at one shape
    count_static(loaded, lengths)                       # once per distinct length (+ checks)
    count_dynamic(loaded, paths)                        # ELUE `modules` paths, cached per shape
    with CountPool(loaded) as pool:                     # counts in forked processes, one per CPU
        count_static(loaded, lengths, pool=pool)
    exit_layer_paths(exit_layers, lengths, hidden)      # exit-layer shorthand -> paths
"""

from worker.counting.count import (
    AGREEMENT_TOLERANCE,
    ShapeCount,
    count_module,
    fastpath_disabled,
)
from worker.counting.forkpool import available_cpus
from worker.counting.handles import FVCORE_ONLY_OPS, NORM_OPS, ZERO_COST_OPS
from worker.counting.loading import (
    ENTIRE_MODEL,
    LoadedModel,
    ModelFileError,
    count_parameters,
    load_model_file,
)
from worker.counting.plans import (
    ContentCheck,
    CountCache,
    CountPool,
    CountRequest,
    DynamicCostResult,
    PathStep,
    StaticCostResult,
    count_dynamic,
    count_static,
    exit_layer_paths,
    infer_hidden_size,
)

__all__ = [
    "AGREEMENT_TOLERANCE",
    "ENTIRE_MODEL",
    "FVCORE_ONLY_OPS",
    "NORM_OPS",
    "ZERO_COST_OPS",
    "ContentCheck",
    "CountCache",
    "CountPool",
    "CountRequest",
    "DynamicCostResult",
    "LoadedModel",
    "ModelFileError",
    "PathStep",
    "ShapeCount",
    "StaticCostResult",
    "available_cpus",
    "count_dynamic",
    "count_module",
    "count_parameters",
    "count_static",
    "exit_layer_paths",
    "fastpath_disabled",
    "infer_hidden_size",
    "load_model_file",
]

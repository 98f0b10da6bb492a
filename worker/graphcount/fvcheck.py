"""fvcore as the independent second counter, on a module rebuilt from the captured graph.

The graph (never the submitted file) is replayed with real tensors (zeros for the weights; the
values do not change what fvcore counts) under fvcore's `FlopCountAnalysis`, which traces it
with torch.jit and costs what it knows in its own way: multiply-accumulates of the products
and 5 per element of the normalisations, which x2 is the ELUE convention. Done at two lengths;
`count_capture` compares with the rules' ELUE number there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from worker.graphcount.count import GraphSet
from worker.graphcount.graph import Graph, decode, dtype_of, resolve

# Above this many weight elements the replay would need too much memory: skipped, with a note.
MAX_REPLAY_ELEMENTS = 1_500_000_000
PROBE_LENGTHS = (37,)


def _sdpa_handle(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch = math.prod(q[:-2])
    return int(batch * q[-2] * k[-2] * q[-1] + batch * q[-2] * k[-2] * v[-1])


def _conv_handle(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    w = get_shape(inputs[1])
    out = get_shape(outputs[0])
    return int(math.prod(out) * math.prod(w[1:]))


class _Replay(nn.Module):
    def __init__(self, graph: Graph, length: int) -> None:
        super().__init__()
        self.graph = graph
        self.length = length
        self.store: dict[str, torch.Tensor] = {}
        for item in graph.inputs:
            if item.kind == "input":
                continue
            dims = [int(s) for s in item.shape]
            # fvcore counts shapes: weights need no values (uninitialised memory), but integer
            # tensors may be indices (position ids), so they are zeros
            dtype = dtype_of(item.dtype)
            maker = torch.empty if dtype.is_floating_point or dtype.is_complex else torch.zeros
            self.store[item.name] = maker(dims, dtype=dtype)

    def inputs(self) -> tuple[torch.Tensor, ...]:
        out = []
        for item in self.graph.inputs:
            if item.kind != "input":
                continue
            dims = [self.length if s == "L" else int(s) for s in item.shape]
            fill = 1 if "mask" in item.target else 0
            out.append(torch.full(dims, fill, dtype=dtype_of(item.dtype)))
        return tuple(out)

    def forward(self, *inputs: torch.Tensor) -> Any:
        env: dict[str, Any] = dict(self.store)
        user = iter(inputs)
        for item in self.graph.inputs:
            if item.kind == "input":
                env[item.name] = next(user)
        for node in self.graph.nodes:
            args = decode(node.args, env, self.length)
            kwargs = {k: decode(v, env, self.length) for k, v in node.kw.items()}
            env[node.name] = resolve(node.target)(*args, **kwargs)
        outs = decode(self.graph.outputs or [], env, self.length)
        return tuple(o for o in outs if isinstance(o, torch.Tensor))


def fvcore_elue(graph: Graph, length: int) -> float:
    """fvcore's count of the replayed graph at `length`, x2 (ELUE convention FLOPs)."""
    from fvcore.nn import FlopCountAnalysis

    replay = _Replay(graph, length).eval()
    with torch.no_grad():
        analysis = FlopCountAnalysis(replay, replay.inputs())
        analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_handle)
        for name in ("aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::convolution"):
            analysis.set_op_handle(name, _conv_handle)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        logging.getLogger("fvcore").setLevel(logging.ERROR)
        return 2.0 * float(analysis.total())


def cross_check(
    graphs: GraphSet, capture_graphs: dict[str, Graph], lengths: Sequence[int] = PROBE_LENGTHS
) -> dict[str, Any]:
    """fvcore vs the rules (ELUE convention) at a few lengths; a report, never raises."""
    from worker.graphcount import rules

    costs = graphs.any()
    walk = costs.walk
    assert walk is not None
    if sum(walk.param_elements.values()) > MAX_REPLAY_ELEMENTS:
        return {"skipped": "the model is too large to replay for fvcore", "points": []}
    points = []
    try:
        if graphs.symbolic is not None:
            graph = capture_graphs["symbolic"]
            for n in lengths:
                ours = rules.evaluate(graphs.symbolic.elue, n)
                points.append({"length": n, "rules": ours, "fvcore": fvcore_elue(graph, n)})
        else:
            n = min(graphs.per_length)
            ours = rules.evaluate(graphs.per_length[n].elue, n)
            graph = capture_graphs.get(str(n)) or capture_graphs["symbolic"]
            points.append({"length": n, "rules": ours, "fvcore": fvcore_elue(graph, n)})
    except Exception as exc:  # fvcore could not replay it: say so, keep the rules' number
        return {
            "skipped": f"fvcore could not replay the graph: {type(exc).__name__}: {exc}"[:500],
            "points": [],
        }
    return {"counter": "fvcore", "points": points}

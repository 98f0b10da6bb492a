"""The one writer of a result's cost rows: its summary on `results` and its `result_costs` row.

The worker's counting stage, the seed's counted baseline and the results import all write
through `write_result_costs`, so a counted point looks the same whoever counted it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from core.arrays import pack_array
from core.models import Result, ResultCost

COUNTED: Final = "counted"  # Result.cost_status of a point whose FLOPs this service counted


def flops_summary(values: npt.NDArray[Any]) -> dict[str, float]:
    """Mean, median, 10th and 90th percentiles and maximum of per-sample FLOPs."""
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return {
        "flops_mean": float(values.mean()),
        "flops_median": float(median),
        "flops_p10": float(p10),
        "flops_p90": float(p90),
        "flops_max": float(values.max()),
    }


@dataclass(frozen=True, slots=True)
class CostRows:
    """A point's per-sample FLOPs and what the count found out about them (`result_costs`)."""

    flops: npt.NDArray[Any]  # integers as counted (an import keeps the dtype it was given)
    flops_elue: npt.NDArray[Any] | None = None  # empty or None: not counted that way
    per_operator: Mapping[str, Any] = field(default_factory=dict)
    per_module: Mapping[str, Any] = field(default_factory=dict)
    uncounted: Mapping[str, Any] = field(default_factory=dict)
    mismatches: Sequence[Any] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CountedBy:
    """Who counted: the counter's provenance written on the result's summary."""

    device: str | None
    versions: Mapping[str, Any]
    incomplete: bool
    disagrees: bool
    counter_version: str | None
    rule_hash: str | None
    params: int | None = None  # None: the result's parameter count is left as it is


def write_result_costs(
    session: Session, result: Result, rows: CostRows, *, counted: CountedBy | None = None
) -> ResultCost:
    """Upsert `result`'s `result_costs` row (re-runs overwrite); with `counted`, also its cost
    summary (`cost_status` "counted"). Without it the summary is the caller's (an import
    carries its own). The result must have an id (flushed)."""
    flops = np.asarray(rows.flops)
    elue = np.asarray(rows.flops_elue) if rows.flops_elue is not None else np.zeros(0, np.int64)
    if counted is not None:
        for name, value in flops_summary(flops.astype(np.float64)).items():
            setattr(result, name, value)
        result.macs_mean = (result.flops_mean or 0.0) / 2
        if counted.params is not None:
            result.params = counted.params
        result.cost_status = COUNTED
        result.device = (counted.device or "")[:64] or None
        result.counter_versions = dict(counted.versions)
        result.flops_elue_mean = float(elue.mean()) if elue.size else None
        result.cost_incomplete = counted.incomplete
        result.cost_disagrees = counted.disagrees
        result.counter_version = counted.counter_version
        result.rule_hash = counted.rule_hash
    cost = session.get(ResultCost, result.id)
    if cost is None:
        cost = ResultCost(result_id=result.id)
        session.add(cost)
    cost.n = int(flops.size)
    cost.flops = pack_array(flops)
    cost.flops_elue = pack_array(elue) if elue.size else None
    cost.per_operator = dict(rows.per_operator)
    cost.per_module = dict(rows.per_module)
    cost.uncounted = dict(rows.uncounted)
    cost.mismatches = list(rows.mismatches)
    cost.details = dict(rows.details)
    return cost

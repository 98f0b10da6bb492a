"""Self-reported costs: units, the plausible range, and unit-slip detection.

One table (`PLAUSIBLE`) states what a typed-in FLOPs or parameter count may be; the method page
(docs/ranking.md, "Self-reported costs") and the submit form print it from here. A number outside
the range is refused with the reason; one whose value times 10^6 (or divided by 10^6) lands in
the range is refused as a likely unit slip, naming the value the submitter probably meant (ELUE
asks for MFLOPs and millions of parameters, so 6,788 typed as FLOPs is 6,788 MFLOPs).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from core.errors import Problem

MEGA = 1_000_000


class FlopsUnit(enum.StrEnum):
    """FLOPs per sample (products counted as 2 x multiply-accumulates, as ELUE)."""

    FLOPS = "FLOPs"
    MFLOPS = "MFLOPs"
    GFLOPS = "GFLOPs"

    @property
    def factor(self) -> int:
        return {"FLOPs": 1, "MFLOPs": MEGA, "GFLOPs": 1000 * MEGA}[self.value]


class ParamsUnit(enum.StrEnum):
    PARAMS = "params"
    M = "M"  # millions of parameters, as ELUE asks

    @property
    def factor(self) -> int:
        return 1 if self is ParamsUnit.PARAMS else MEGA


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds of a plausible value (in FLOPs per sample, or parameters)."""

    low: float
    high: float
    why: str

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


# The same on every task: the ELUE tasks' inputs differ in length by less than the margins.
# Low: a bag-of-embeddings classifier with a tiny vocabulary (about 10^4 parameters, a few
# thousand FLOPs less than any text model that reads every token through one dense layer).
# High: a 100B-parameter model on 512 tokens (~10^14 FLOPs per sample is beyond any entry on
# an efficiency board; 10^13 is a 10B model on 512 tokens).
PLAUSIBLE: dict[str, Range] = {
    "flops": Range(
        1e4,
        1e13,
        "from 10,000 FLOPs (0.01 MFLOPs) to 10^13 FLOPs (10,000,000 MFLOPs) per sample",
    ),
    "params": Range(1e4, 1e11, "from 10,000 parameters (0.01 M) to 10^11 parameters (100,000 M)"),
}


def _number(value: float) -> str:
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return text if abs(value) >= 0.001 or value == 0 else f"{value:g}"


def check_cost(
    quantity: str, value: float, unit: FlopsUnit | ParamsUnit, *, column: str
) -> tuple[float | None, Problem | None]:
    """The value in base units (FLOPs per sample, or parameters), or why it is refused."""
    label = "FLOPs per sample" if quantity == "flops" else "parameters"
    typed = f"{_number(value)} {unit.value}"
    if not math.isfinite(value):
        return None, Problem(f"{label}: {typed} is not a finite number", column=column)
    if value <= 0:
        return None, Problem(
            f"{label}: {typed} cannot be true: it must be greater than zero", column=column
        )
    base = value * unit.factor
    plausible = PLAUSIBLE[quantity]
    if base in plausible:
        return base, None
    larger, smaller = _larger(unit), _smaller(unit)
    if base < plausible.low and larger is not None and value * larger.factor in plausible:
        return None, Problem(
            f"{label}: {typed} is below the plausible range ({plausible.why}); this looks like "
            f"a unit slip: did you mean {_number(value)} {larger.value} "
            f"(= {_number(value * larger.factor)} {_base_unit(quantity)})?",
            column=column,
        )
    if base > plausible.high and smaller is not None and value * smaller.factor in plausible:
        return None, Problem(
            f"{label}: {typed} is above the plausible range ({plausible.why}); this looks like "
            f"a unit slip: did you mean {_number(value)} {smaller.value} "
            f"(= {_number(value / MEGA)} {unit.value})?",
            column=column,
        )
    side = "below" if base < plausible.low else "above"
    return None, Problem(
        f"{label}: {typed} (= {_number(base)} {_base_unit(quantity)}) is {side} the plausible "
        f"range, {plausible.why}",
        column=column,
    )


def _base_unit(quantity: str) -> str:
    return "FLOPs" if quantity == "flops" else "parameters"


def _larger(unit: FlopsUnit | ParamsUnit) -> FlopsUnit | ParamsUnit | None:
    """The unit a million times larger, if any (FLOPs -> MFLOPs, params -> M)."""
    if isinstance(unit, FlopsUnit):
        return FlopsUnit.MFLOPS if unit is FlopsUnit.FLOPS else None
    return ParamsUnit.M if unit is ParamsUnit.PARAMS else None


def _smaller(unit: FlopsUnit | ParamsUnit) -> FlopsUnit | ParamsUnit | None:
    """The unit a million times smaller, if any (MFLOPs -> FLOPs, M -> params)."""
    if isinstance(unit, FlopsUnit):
        return FlopsUnit.FLOPS if unit is FlopsUnit.MFLOPS else None
    return ParamsUnit.PARAMS if unit is ParamsUnit.M else None


def method_text() -> list[tuple[str, str]]:
    """(quantity, plausible range) rows, for the method page and the submit form."""
    return [("FLOPs per sample", PLAUSIBLE["flops"].why), ("parameters", PLAUSIBLE["params"].why)]

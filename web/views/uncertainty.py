"""Display pieces for intervals, curve summaries and exit-layer diagnostics (docs/ranking.md).

Kept apart from the board and submission views so their templates only include small partials
(`_uncertainty.html`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from web.views import format as fmt


class CurveLike(Protocol):
    @property
    def window_low(self) -> float | None: ...
    @property
    def window_high(self) -> float | None: ...
    @property
    def gain(self) -> float | None: ...
    @property
    def loss(self) -> float | None: ...
    @property
    def net(self) -> float | None: ...
    @property
    def hypervolume(self) -> float: ...
    @property
    def reference_flops(self) -> float: ...
    @property
    def reference_performance(self) -> float: ...


@dataclass(frozen=True, slots=True)
class CurveText:
    """A curve summary as one short line and a longer title (the window and reference)."""

    text: str
    title: str


def curve_text(curve: CurveLike | None) -> CurveText | None:
    if curve is None:
        return None
    hv = f"HV {curve.hypervolume:.2f}"
    reference = (
        f"hypervolume in log10 FLOPs x points against the reference "
        f"({fmt.flops(curve.reference_flops)}, {fmt.perf(curve.reference_performance)})"
    )
    if curve.window_low is None or curve.window_high is None:
        return CurveText(
            f"no common FLOPs window; {hv}",
            f"The curve and the baseline's share no FLOPs range; {reference}",
        )
    window = f"{fmt.flops(curve.window_low)} to {fmt.flops(curve.window_high)}"
    return CurveText(
        f"area {fmt.signed(curve.gain)} / {fmt.signed(-(curve.loss or 0.0))} over {window}; {hv}",
        f"Area above / below the baseline per decade of FLOPs (log axis) over the common "
        f"window {window} (net {fmt.signed(curve.net)}); {reference}",
    )


def diagnostics_json(diagnostics: Mapping[str, object]) -> str:
    """Exit-layer diagnostics of a task's points as JSON safe to embed in a <script> block."""
    text = json.dumps(diagnostics, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

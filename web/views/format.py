"""How numbers are written on the pages (templates print these strings as they are)."""

from __future__ import annotations

import datetime as dt
import math

MINUS = "\u2212"  # a real minus sign: screen readers say "minus", and it lines up with "+"
DASH = "\u2014"  # shown where there is no value

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def si(value: float | None, digits: int = 3) -> str:
    """`value` with an SI prefix and `digits` significant digits: 4237000000 -> "4.24 G"."""
    if value is None or not math.isfinite(value):
        return DASH
    for scale, prefix in _SI:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}"
    return f"{value:.{digits}g} "


def flops(value: float | None) -> str:
    """FLOPs per sample: "4.24 GFLOPs"."""
    text = si(value)
    return text if text == DASH else f"{text}FLOPs"


def params(value: int | float | None) -> str:
    """A parameter count: "109.5M", "9.34M", "480K"."""
    if value is None:
        return DASH
    if value >= 1e9:
        return f"{value / 1e9:.3g}B"
    if value >= 1e8:
        return f"{value / 1e6:.4g}M"  # BERT-base: 109.5M
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e3:
        return f"{value / 1e3:.3g}K"
    return f"{int(value)}"


def exact(value: int | float | None) -> str:
    """The full number with thousands separators (for titles and tables of detail)."""
    if value is None:
        return DASH
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def signed(value: float | None, digits: int = 2) -> str:
    """An ELUE score or delta: "+0.65", or "1.20" after a minus sign (U+2212)."""
    if value is None or not math.isfinite(value):
        return DASH
    text = f"{abs(value):.{digits}f}"
    if float(text) == 0:
        return f"{0:.{digits}f}"
    return f"+{text}" if value > 0 else f"{MINUS}{text}"


def perf(value: float | None, digits: int = 2) -> str:
    """A performance (metric x100): "87.00"."""
    if value is None or not math.isfinite(value):
        return DASH
    text = f"{value:.{digits}f}"
    return text.replace("-", MINUS)


def interval(low: float | None, high: float | None, *, signed_values: bool = False) -> str:
    """A 95% bootstrap interval: "[86.30, 87.70]" (scores signed: "[-0.40, +1.10]" with a minus sign); a dash
    when none was computed (never a made-up interval)."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return DASH
    show = signed if signed_values else perf
    return f"[{show(low)}, {show(high)}]"


def percent(part: float, whole: float) -> float:
    """`part` as a percentage of `whole`, for bar widths (0 when `whole` is 0)."""
    return 0.0 if whole <= 0 else max(0.0, min(100.0, 100.0 * part / whole))


def duration(seconds: float | None) -> str:
    """Elapsed time: "45 s", "3 min 05 s", "2 h 10 min"."""
    if seconds is None:
        return DASH
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def when(value: dt.datetime | None) -> str:
    """A UTC time: "2026-11-25 14:03 UTC"."""
    if value is None:
        return DASH
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def iso(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def size(n: int) -> str:
    """A file size: "2.1 MiB", "830 B"."""
    if n >= 1024**3:
        return f"{n / 1024**3:.2f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} B"


METRIC_TEXT = {
    "accuracy": "Accuracy",
    "accuracy_f1": "Mean of accuracy and F1 (positive class)",
    "pearson_spearman": "Mean of Pearson and Spearman correlation",
}
METRIC_SHORT = {"accuracy": "Acc.", "accuracy_f1": "Acc./F1", "pearson_spearman": "Corr."}


def metric_text(metric: str) -> str:
    return METRIC_TEXT.get(metric, metric)

"""The compare view's query: which task, which entries (at most `MAX_ENTRIES`, as ELUE's
plots), the plots' scale and the FLOPs unit, the reference entry. The URL holds the whole view,
so a link reproduces it: `/compare?task=SST-2&ids=12,15,40&scale=log&unit=M` (`ids` may also
repeat, as the board's checkboxes send it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from core.errors import InvalidInputError, Problem

MAX_ENTRIES = 11  # as ELUE's plots
PICK_LIST = 100  # board entries offered as checkboxes on the compare page
UNITS: dict[str, float] = {"1": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}
Scale = Literal["log", "linear"]


@dataclass(frozen=True, slots=True)
class CompareQuery:
    task: str
    ids: tuple[int, ...] = ()
    scale: Scale = "log"
    unit: str = "M"
    ref: int | None = None  # the reference entry of the paired differences

    def params(self) -> dict[str, str]:
        values = {"task": self.task, "ids": ",".join(str(i) for i in self.ids)}
        if self.ref is not None:
            values["ref"] = str(self.ref)
        if self.scale != "log":
            values["scale"] = self.scale
        if self.unit != "M":
            values["unit"] = self.unit
        return {k: v for k, v in values.items() if v}

    def url(self, path: str = "/compare") -> str:
        return path + "?" + urlencode(self.params())


def parse_compare_query(
    task: str, ids: Sequence[str], scale: str = "log", unit: str = "M", ref: str | None = None
) -> CompareQuery:
    """The query, or InvalidInputError listing every problem (bad id, too many, bad option)."""
    problems: list[Problem] = []
    chosen: list[int] = []
    for raw in ids:
        for part in raw.split(","):
            text = part.strip()
            if not text:
                continue
            if not text.isdigit() or not 1 <= int(text) <= 2**62:
                problems.append(Problem(f"{text[:40]!r} is not an entry id", column="ids"))
            elif int(text) not in chosen:
                chosen.append(int(text))
    if len(chosen) > MAX_ENTRIES:
        problems.append(
            Problem(
                f"{len(chosen)} entries chosen; compare at most {MAX_ENTRIES} at a time "
                "(untick some)",
                column="ids",
            )
        )
    if scale not in ("log", "linear"):
        problems.append(Problem(f"scale must be log or linear, not {scale[:20]!r}", column="scale"))
    if unit not in UNITS:
        problems.append(
            Problem(f"unit must be one of {', '.join(UNITS)}, not {unit[:20]!r}", column="unit")
        )
    reference: int | None = None
    if ref is not None and ref.strip():
        if not ref.strip().isdigit() or not 1 <= int(ref.strip()) <= 2**62:
            problems.append(Problem(f"{ref[:40]!r} is not an entry id", column="ref"))
        elif int(ref.strip()) not in chosen:
            problems.append(
                Problem(f"the reference #{ref.strip()} is not among the chosen entries", "ref")
            )
        else:
            reference = int(ref.strip())
    if problems:
        raise InvalidInputError("Cannot show this comparison", problems)
    return CompareQuery(
        task=task,
        ids=tuple(chosen),
        scale="linear" if scale == "linear" else "log",
        unit=unit,
        ref=reference,
    )

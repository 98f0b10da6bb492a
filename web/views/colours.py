"""One colour per entry, the same on every plot of the site.

An entry's colour is a pure function of its submission id: a fixed qualitative palette (the 18
coloured members of Tableau 20; its two greys are left out, greys and black are kept for the
baseline and the front) indexed by Fibonacci hashing of the id (the top bits of id x 2^32/phi),
so any 11 consecutive ids get 11 different colours and other ids spread evenly. The plots' JSON carries the colour of each entry; the scripts never choose
one. Two entries can share a colour (18 colours, any number of entries): the legend names every
curve, and the compare view gives each curve its marker too.
"""

from __future__ import annotations

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
)
BASELINE_COLOUR = "#111111"  # drawn dashed, square markers
FRONT_COLOUR = "#6b6b6b"  # drawn as a grey step line with open circles
_FIBONACCI = 2654435769  # round(2^32 / golden ratio)


def entry_colour(submission_id: int) -> str:
    """The colour of an entry on every plot (stable across pages, processes and releases)."""
    mixed = (submission_id * _FIBONACCI) & 0xFFFFFFFF
    return PALETTE[(mixed * len(PALETTE)) >> 32]


def colour_of(submission_id: int, *, is_baseline: bool) -> str:
    """An entry's colour where it is drawn: the task's baseline is always drawn in black (its
    own style on every plot); every other entry in its `entry_colour`."""
    return BASELINE_COLOUR if is_baseline else entry_colour(submission_id)

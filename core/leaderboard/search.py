"""Name search over a cached leaderboard without scanning it: a sorted index of word starts.

What matches: an entry whose name, case-folded, has a word that starts with the query (also
case-folded, surrounding spaces removed); a word starts at the beginning of the name or at a
letter or digit that follows any other character. So "bert" finds "tiny-bert-4l" and
"Distil BERT", "tiny & st" finds "<b> tiny & static", but "istil" finds nothing (no infix
search). The query may span words.

Why in memory rather than a database index: the boards are computed and cached in memory
(`core.leaderboard.cache`), and a search must answer from the very board it filters, with the
same case folding on SQLite and PostgreSQL (SQLite's `lower()` and `LIKE` fold ASCII only).
The index is built once per board and board version (sorting every word start: about
0.3 s at 100,000 entries), then each search is two binary searches plus the matches:
O(log n + k), never a pass over every entry.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence


def word_starts(text: str) -> list[int]:
    """Offsets in `text` where a word starts (see the module doc)."""
    return [
        i for i, ch in enumerate(text) if i == 0 or (ch.isalnum() and not text[i - 1].isalnum())
    ]


class NameIndex:
    """Every word start of every name, sorted by the text from there to the name's end."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = [n.casefold() for n in names]
        pairs = [(i, p) for i, n in enumerate(self._names) for p in word_starts(n)]
        pairs.sort(key=lambda ip: self._names[ip[0]][ip[1] :])
        self._rows = array("l", (i for i, _ in pairs))
        self._offsets = array("l", (p for _, p in pairs))

    def __len__(self) -> int:
        return len(self._rows)

    def _suffix(self, k: int) -> str:
        return self._names[self._rows[k]][self._offsets[k] :]

    def search(self, query: str) -> list[int]:
        """Indices (into `names`) of the names matching `query`, ascending; all for ""."""
        needle = query.strip().casefold()
        if not needle:
            return list(range(len(self._names)))
        keys = _Suffixes(self)
        start = bisect_left(keys, needle)
        found: set[int] = set()
        for k in range(start, len(self._rows)):
            if not self._suffix(k).startswith(needle):
                break
            found.add(self._rows[k])
        return sorted(found)


class _Suffixes(Sequence[str]):
    """The index's sorted suffixes as a sequence, made on demand (for `bisect`)."""

    def __init__(self, index: NameIndex) -> None:
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, k: int) -> str:  # type: ignore[override]
        return self._index._suffix(k)

"""Reading a task folder's TSV files into memory, checked; no database involved.

A task folder holds (see ../shared/data/elue/README.md):

- `test.tsv`: header `index<TAB>...`, the public test inputs; `index` counts 0..n-1 in row order.
- `test_full.tsv`: the same rows in the same order with the gold label in
  `manifest.label_column` and no `index` column. Columns are found by header name, never by
  position (MRPC has `label` first, the others last).
- `dev.tsv`: the labelled dev split, same columns as `test_full.tsv`. Required for the built-in
  ELUE tasks, optional for operators' own tasks (absent: empty dev split).

Columns not named by the manifest (MRPC's `#1 ID`, ...) are ignored.

How the published files' blemishes are read:

- A UTF-8 byte-order mark at the start of a file is dropped; line ends may be LF or CRLF;
  trailing blank lines are ignored (a blank line anywhere else is a problem). Fields are split on
  TAB only; no field of any real file contains a tab or a newline.
- Quoting is decided per file, never per field. The published writers wrap a field in `"..."`
  (inner quotes doubled) only because it contains a `"`, so one layer of CSV quoting is present
  in a file when every text field containing `"` is such a well-formed quoted field and at least
  one of them has a doubled quote inside (or every text field is wrapped, as a quote-all writer
  does). Layers are removed while that holds. In the real data:

  * MRPC `test.tsv` and `dev.tsv` are raw (no layer): many fields hold unbalanced quotes, and 45
    (test) / 15 (dev) raw fields merely begin and end with `"` (`" Sanitation is poor ... . "`),
    which a per-field unquoting rule would wrongly strip; `test_full.tsv` has one layer.
  * STS-B `test.tsv` and `dev.tsv` have one layer; `test_full.tsv` has two (its row 407
    starts with three quotes and doubles `no diving`'s quotes to four each).
  * SST-2, SNLI and SciTail contain no `"` at all.

  After decoding, the test and gold texts of every row must be equal; any row that is not is
  reported, so a wrong quoting decision can never pass silently.
- Texts are compared exactly except for trailing spaces: STS-B's `test_full.tsv` drops the
  trailing spaces of `sentence2` on 5 rows that keep them in `test.tsv`. `Example.texts` are
  `test.tsv`'s decoded texts, unchanged.
- Label and index fields are stripped of surrounding whitespace. Classification labels must be
  one of `manifest.labels` exactly (the real files only use `0`/`1`/`2`; `1.0` is refused);
  regression labels must be finite decimal numbers.
- GLUE's MRPC files call the label column `Quality` (MRPC `dev.tsv` does); it is accepted when
  the manifest's label column is `label` and the header has no `label` column.

Every decision that changed how a file was read is recorded in `TaskData.notes`.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import Problem, TaskDataError
from core.tasks.manifest import ELUE_MANIFESTS, LabelKind, TaskManifest, load_manifest

TEST_FILE = "test.tsv"
GOLD_FILE = "test_full.tsv"
DEV_FILE = "dev.tsv"
INDEX_COLUMN = "index"
MAX_PROBLEMS = 20  # per kind of problem and file; the rest are counted ("and N more")
# Other names under which a label column is accepted, when the header lacks the manifest's name.
LABEL_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {"label": ("Quality",)}

_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_QUOTE_LAYERS = 4
_SNIPPET = 60


@dataclass(frozen=True, slots=True)
class Example:
    """One test or dev input."""

    texts: tuple[str, ...]  # one or two texts, in manifest.text_columns order


@dataclass(frozen=True, slots=True, eq=False)
class TaskData:
    """A task folder's contents, checked. Arrays are read-only; equality is identity."""

    manifest: TaskManifest
    test: tuple[Example, ...]  # public inputs, in index order (index i = row i)
    # Per test row: int64 codes into manifest.labels (classification) or float64 (regression).
    gold: np.ndarray
    dev: tuple[Example, ...]
    dev_labels: np.ndarray  # same encoding as gold; empty when the folder has no dev.tsv
    test_sha256: str  # sha256 (hex) of the raw file bytes
    gold_sha256: str
    dev_sha256: str  # "" when the folder has no dev.tsv
    # How the files were read where it was not plain (quoting layers removed, aliases used, ...).
    notes: tuple[str, ...] = ()


def read_task_folder(task_dir: Path, manifest: TaskManifest | None = None) -> TaskData:
    """Read and check `test.tsv`, `test_full.tsv` and `dev.tsv` of `task_dir`.

    `manifest` None: `load_manifest(task_dir)` (its `task.json`, else the ELUE task named like
    the folder). Raises `TaskDataError` listing every problem found (file, line, column).
    """
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise TaskDataError(
            f"Task folder {task_dir} not found",
            [Problem("expected a folder holding test.tsv and test_full.tsv", file=str(task_dir))],
        )
    if manifest is None:
        manifest = load_manifest(task_dir)
    dev_required = ELUE_MANIFESTS.get(manifest.name) == manifest

    problems = _Problems()
    test_t = _read_table(task_dir / TEST_FILE, problems)
    gold_t = _read_table(task_dir / GOLD_FILE, problems)
    dev_path = task_dir / DEV_FILE
    dev_t = _read_table(dev_path, problems) if dev_required or dev_path.exists() else None
    problems.raise_if_any(f"Cannot read task {manifest.name} from {task_dir}")
    assert test_t is not None  # otherwise problems were raised
    assert gold_t is not None

    notes: list[str] = []
    if not test_t.rows:
        problems.add(Problem("no test rows below the header", test_t.name, 2))
    test_cols = _find_columns(test_t, manifest.text_columns, problems)
    if test_t.header[0] != INDEX_COLUMN:
        problems.add(
            Problem(
                f"the first column must be {INDEX_COLUMN!r}, found {test_t.header[0]!r}",
                file=test_t.name,
                line=1,
                column=INDEX_COLUMN,
            )
        )
    gold_cols = _find_columns(gold_t, manifest.text_columns, problems)
    gold_label = _find_label_column(gold_t, manifest.label_column, problems, notes)
    dev_cols = dev_label = None
    if dev_t is not None:
        dev_cols = _find_columns(dev_t, manifest.text_columns, problems)
        dev_label = _find_label_column(dev_t, manifest.label_column, problems, notes)
    problems.raise_if_any(f"Task {manifest.name}: files lack required columns")
    assert test_cols is not None
    assert gold_cols is not None
    assert gold_label is not None

    _check_index(test_t, problems)
    test_texts = _decoded_texts(test_t, test_cols, manifest.text_columns, notes)
    gold_texts = _decoded_texts(gold_t, gold_cols, manifest.text_columns, notes)
    _check_nonempty(test_t, test_texts, manifest.text_columns, problems)
    _check_alignment(test_t, test_texts, gold_t, gold_texts, manifest.text_columns, problems, notes)
    gold = _parse_labels(gold_t, gold_label, manifest, problems)

    dev: tuple[Example, ...] = ()
    dev_labels = _empty_labels(manifest)
    if dev_t is not None:
        assert dev_cols is not None
        assert dev_label is not None
        dev_texts = _decoded_texts(dev_t, dev_cols, manifest.text_columns, notes)
        _check_nonempty(dev_t, dev_texts, manifest.text_columns, problems)
        dev = _examples(dev_texts)
        dev_labels = _parse_labels(dev_t, dev_label, manifest, problems)
    else:
        notes.append(f"{DEV_FILE}: absent; the task has no dev split")
    problems.raise_if_any(f"Task {manifest.name}: invalid task data")

    gold.flags.writeable = False
    dev_labels.flags.writeable = False
    return TaskData(
        manifest=manifest,
        test=_examples(test_texts),
        gold=gold,
        dev=dev,
        dev_labels=dev_labels,
        test_sha256=test_t.sha256,
        gold_sha256=gold_t.sha256,
        dev_sha256=dev_t.sha256 if dev_t is not None else "",
        notes=tuple(notes),
    )


def read_tsv(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Split a TSV file into (header, rows, physical 1-based line number of each row).

    Fields are raw (no unquoting). Drops a leading BOM, CR of CRLF line ends and trailing blank
    lines; raises `TaskDataError` for a missing or non-UTF-8 file, an empty file, blank lines
    inside the file and rows whose field count differs from the header's.
    """
    problems = _Problems()
    table = _read_table(Path(path), problems)
    problems.raise_if_any(f"Cannot read {path}")
    assert table is not None
    return table.header, table.rows, table.lines


# --- internals -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Table:
    name: str  # the file path as shown in problems
    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    sha256: str


class _Problems:
    """Problems collected across files, at most MAX_PROBLEMS of each kind per file."""

    def __init__(self) -> None:
        self._items: list[Problem] = []
        self._counts: dict[tuple[str | None, str], int] = {}

    def add(self, problem: Problem, kind: str = "problems") -> None:
        key = (problem.file, kind)
        count = self._counts[key] = self._counts.get(key, 0) + 1
        if count <= MAX_PROBLEMS:
            self._items.append(problem)

    def raise_if_any(self, message: str) -> None:
        if not self._items:
            return
        items = list(self._items)
        for (file, kind), count in self._counts.items():
            if count > MAX_PROBLEMS:
                items.append(Problem(f"and {count - MAX_PROBLEMS} more {kind}", file=file))
        raise TaskDataError(message, items)


def _read_table(path: Path, problems: _Problems) -> _Table | None:
    name = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.add(Problem("file is missing", file=name))
        return None
    except OSError as exc:
        problems.add(Problem(f"cannot read the file: {exc.strerror or exc}", file=name))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at_line = data.count(b"\n", 0, exc.start) + 1
        problems.add(
            Problem(
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded)", name, at_line
            )
        )
        return None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    # split("\n") rather than splitlines(): texts may hold \x0b, \x1c, \u2028, ... as characters.
    lines = text.split("\n")
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    if end == 0:
        problems.add(Problem("file is empty; expected a header line of column names", name, 1))
        return None
    del lines[end:]
    header = [h.strip() for h in lines[0].split("\t")]
    width = len(header)
    rows = [line.split("\t") for line in lines]
    if "\r" in lines[0]:
        problems.add(Problem("stray carriage return (\\r) inside the header", name, 1))
    has_cr = "\r" in text
    bad = [i for i, row in enumerate(rows) if len(row) != width or (has_cr and "\r" in lines[i])]
    for i in bad:
        if i == 0:
            continue
        line = lines[i]
        if not line.strip():
            message = "blank line inside the file (only trailing blank lines are ignored)"
        elif "\r" in line:
            message = "stray carriage return (\\r) inside the line"
        else:
            message = (
                f"expected {width} tab-separated fields ({', '.join(header)}), found {len(rows[i])}"
            )
        problems.add(Problem(message, name, i + 1), "malformed lines")
    if bad:
        skip = set(bad)
        keep = [i for i in range(1, end) if i not in skip]
        return _Table(
            name,
            header,
            [rows[i] for i in keep],
            [i + 1 for i in keep],
            hashlib.sha256(data).hexdigest(),
        )
    numbers = list(range(2, end + 1))
    return _Table(name, header, rows[1:], numbers, hashlib.sha256(data).hexdigest())


def _find_columns(table: _Table, names: tuple[str, ...], problems: _Problems) -> list[int] | None:
    found: list[int] = []
    for name in names:
        position = _position(table, name, problems)
        if position is None:
            problems.add(
                Problem(
                    f"missing column {name!r}; the header has: {', '.join(table.header)}",
                    table.name,
                    1,
                    name,
                )
            )
        else:
            found.append(position)
    return found if len(found) == len(names) else None


def _find_label_column(
    table: _Table, name: str, problems: _Problems, notes: list[str]
) -> int | None:
    if name not in table.header:
        for alias in LABEL_COLUMN_ALIASES.get(name, ()):
            position = _position(table, alias, problems)
            if position is not None:
                notes.append(f"{table.name}: label column {alias!r} read as {name!r}")
                return position
    position = _position(table, name, problems)
    if position is None:
        problems.add(
            Problem(
                f"missing label column {name!r}; the header has: {', '.join(table.header)}",
                table.name,
                1,
                name,
            )
        )
    return position


def _position(table: _Table, name: str, problems: _Problems) -> int | None:
    count = table.header.count(name)
    if count > 1:
        problems.add(Problem(f"column {name!r} appears {count} times", table.name, 1, name))
    return table.header.index(name) if count else None


def _check_index(table: _Table, problems: _Problems) -> None:
    for row_number, (row, line) in enumerate(zip(table.rows, table.lines, strict=True)):
        value = row[0].strip()
        if value != str(row_number):
            problems.add(
                Problem(
                    f"{INDEX_COLUMN} must count 0, 1, 2, ... in row order: expected "
                    f"{row_number}, found {_clip(value)!r}",
                    table.name,
                    line,
                    INDEX_COLUMN,
                )
            )
            return


def _decoded_texts(
    table: _Table, positions: list[int], names: tuple[str, ...], notes: list[str]
) -> list[list[str]]:
    """The text columns of `table` with the file's CSV quoting layers removed."""
    columns = [[row[p] for row in table.rows] for p in positions]
    layers = 0
    while layers < _MAX_QUOTE_LAYERS and _has_quoting_layer(columns):
        columns = [[_unquote(v) for v in column] for column in columns]
        layers += 1
    if layers:
        notes.append(
            f"{table.name}: text fields ({', '.join(names)}) are CSV-quoted "
            f"({layers} layer{'s' if layers > 1 else ''}); read unquoted"
        )
    return columns


def _has_quoting_layer(columns: list[list[str]]) -> bool:
    """Whether these fields, taken together, carry one layer of CSV quoting (see module doc)."""
    quoted = 0
    doubled_inside = False
    bare_text = False
    for column in columns:
        for value in column:
            if '"' not in value:
                bare_text = bare_text or bool(value)
                continue
            if not _QUOTED.fullmatch(value):
                return False
            quoted += 1
            doubled_inside = doubled_inside or '""' in value[1:-1]
    return quoted > 0 and (doubled_inside or not bare_text)


def _unquote(value: str) -> str:
    if '"' in value and _QUOTED.fullmatch(value):
        return value[1:-1].replace('""', '"')
    return value


def _check_nonempty(
    table: _Table, texts: list[list[str]], names: tuple[str, ...], problems: _Problems
) -> None:
    for name, column in zip(names, texts, strict=True):
        for value, line in zip(column, table.lines, strict=True):
            if not value.strip():
                problems.add(Problem("empty text", table.name, line, name), "empty texts")


def _check_alignment(
    test_t: _Table,
    test_texts: list[list[str]],
    gold_t: _Table,
    gold_texts: list[list[str]],
    names: tuple[str, ...],
    problems: _Problems,
    notes: list[str],
) -> None:
    n_test, n_gold = len(test_t.rows), len(gold_t.rows)
    if n_test != n_gold:
        problems.add(
            Problem(
                f"{n_gold} rows, but {TEST_FILE} has {n_test}; both files must hold the same "
                f"rows in the same order (text differences below show where they diverge)",
                gold_t.name,
            )
        )
    trailing_only = 0
    for row in range(min(n_test, n_gold)):
        for name, test_col, gold_col in zip(names, test_texts, gold_texts, strict=True):
            a, b = test_col[row], gold_col[row]
            if a == b:
                continue
            if a.rstrip(" ") == b.rstrip(" "):
                trailing_only += 1
                continue
            shown_a, shown_b, at = _difference(a, b)
            problems.add(
                Problem(
                    f"text differs from {TEST_FILE} line {test_t.lines[row]} at character "
                    f"{at}: {TEST_FILE} has {shown_a}, {GOLD_FILE} has {shown_b}",
                    gold_t.name,
                    gold_t.lines[row],
                    name,
                ),
                "rows whose text differs from test.tsv",
            )
    if trailing_only:
        notes.append(
            f"{gold_t.name}: {trailing_only} text field(s) differ from {TEST_FILE} only by "
            f"trailing spaces (accepted)"
        )


def _difference(a: str, b: str) -> tuple[str, str, int]:
    """Both texts cut around their first difference, and its 1-based position."""
    at = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    start = max(0, at - _SNIPPET // 3)

    def cut(text: str) -> str:
        part = text[start : start + _SNIPPET]
        head = "…" if start > 0 else ""
        tail = "…" if start + _SNIPPET < len(text) else ""
        return f"{head}{part!r}{tail}"

    return cut(a), cut(b), at + 1


def _parse_labels(
    table: _Table, position: int, manifest: TaskManifest, problems: _Problems
) -> np.ndarray:
    column = manifest.label_column
    values = [row[position].strip() for row in table.rows]
    if manifest.label_kind is LabelKind.CLASSIFICATION:
        codes = {label: code for code, label in enumerate(manifest.labels)}
        out = np.empty(len(values), dtype=np.int64)
        allowed = ", ".join(repr(label) for label in manifest.labels)
        for i, value in enumerate(values):
            code = codes.get(value)
            if code is None:
                problems.add(
                    Problem(
                        f"label {_clip(value)!r} is not one of {allowed}",
                        table.name,
                        table.lines[i],
                        column,
                    ),
                    "bad labels",
                )
                code = -1
            out[i] = code
        return out
    numbers = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        number = float(value) if _DECIMAL.fullmatch(value) else math.nan
        if not math.isfinite(number):
            problems.add(
                Problem(
                    f"label {_clip(value)!r} is not a finite decimal number",
                    table.name,
                    table.lines[i],
                    column,
                ),
                "bad labels",
            )
        numbers[i] = number
    return numbers


def _empty_labels(manifest: TaskManifest) -> np.ndarray:
    dtype = np.int64 if manifest.label_kind is LabelKind.CLASSIFICATION else np.float64
    return np.empty(0, dtype=dtype)


def _examples(texts: list[list[str]]) -> tuple[Example, ...]:
    return tuple(map(Example, zip(*texts, strict=True)))


def _clip(value: str, limit: int = _SNIPPET) -> str:
    return value if len(value) <= limit else value[:limit] + "…"

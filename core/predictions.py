"""Prediction files: parse a submitted TSV into arrays, or refuse it with every problem found.

A prediction file is UTF-8 TSV with a header line, one row per example of the task's public test
set (see docs/elue-protocol.md, "Prediction file"):

- `index` (first column): the 0-based row of the public test file; each of 0..n_rows-1 exactly
  once, in any order.
- `prediction` or `pred`: a classification label, exactly one of `manifest.labels`, or for a
  regression task a finite decimal number.
- optionally ONE of
  - `modules` (ELUE form): the path the example took through the model, `;`-separated entries
    `(<shape>),<module name>`, e.g. `(10),emb; (10,768),layer_1; (768),exit_1`;
  - `exit_layer`: the 1-based layer at which the example exited (1..1000).

Column names are case-insensitive and may carry surrounding whitespace. Tolerated blemishes: a
UTF-8 byte-order mark; LF, CRLF, CR or mixed line ends; fully blank (whitespace-only) lines
anywhere; rows in any order; whitespace around fields; a field wrapped whole in double quotes.

Decisions beyond the protocol:

- Integer labels may also be spelled as integer-valued decimals: `1.0`, `1.00` or `1.` are read
  as the label `1` when `1` is one of the task's labels (files written from float arrays look
  like that). Nothing else is normalised: `01`, `1e0`, `True` or `Pos` for `pos` are refused.
- A shape may end with a trailing comma, as Python prints one-element tuples: `(768,),exit_1`.
- Regression values are ASCII decimal numbers as Python's `float` reads them, without `_`
  separators; NaN and infinities (also `1e999`, which overflows) are refused.
- `index` and `exit_layer` are plain ASCII digit strings (no sign, no `1.0`).
- ElasticBERT writes the exit layers as a second file, `index<TAB>exit_layer`
  (`parse_exit_layer_file`); a submission joins it to its prediction file as this format
  (`write_with_exit_layers`).
- Line numbers in problems are physical, 1-based, counted after CRLF / CR were turned into line
  ends; the header is the first non-blank line (normally line 1).

Every problem is collected (capped at `max_problems`, plus one closing problem saying how many
more were found) and raised together as one `PredictionFileError`; no other exception escapes
for any input bytes.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

import numpy as np
import numpy.typing as npt

from core.errors import PredictionFileError, Problem
from core.tasks.manifest import LabelKind, TaskManifest

DEFAULT_MAX_BYTES: Final = 50 * 1024 * 1024
DEFAULT_MAX_PROBLEMS: Final = 50

MAX_MODULE_ENTRIES: Final = 4096  # per row
MAX_SHAPE_DIMS: Final = 8
MAX_DIM: Final = 10_000_000
MAX_MODULE_NAME_LEN: Final = 128
MAX_EXIT_LAYER: Final = 1000

_CACHE_LIMIT: Final = 100_000  # distinct modules strings / entries remembered per parse

_MODULE_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ENTRY_RE: Final = re.compile(r"\s*\(([^()]*)\)\s*,\s*(.*?)\s*", re.DOTALL)
_CANONICAL_INT_RE: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")
_INT_DECIMAL_RE: Final = re.compile(r"(-?[0-9]+)\.0*")  # "1.0", "1.": looked up as "1"

_HEADER_HINT: Final = (
    "expected a header line index<TAB>prediction (or index<TAB>pred), optionally followed by "
    "a modules or exit_layer column"
)
_MODULES_FORM: Final = "(<shape>),<module name>, e.g. (10,768),layer_1"
_SHAPE_FORM: Final = f"a shape is 1 to {MAX_SHAPE_DIMS} positive integers, e.g. (10,768)"


class PredictionFormat(enum.StrEnum):
    """Which optional column a prediction file has."""

    SIMPLE = "simple"  # index<TAB>prediction (or pred) only
    ELUE = "elue"  # has a `modules` column
    EXIT_LAYER = "exit_layer"  # has an `exit_layer` column


@dataclass(frozen=True, slots=True)
class ModuleCall:
    """One module an example passed through, with its input shape (no batch dimension)."""

    name: str  # module name as in the model file's module_list, e.g. "layer_1"
    shape: tuple[int, ...]  # e.g. (10, 768)


# eq=False: the generated __eq__ would compare numpy arrays, whose truth value is ambiguous.
@dataclass(frozen=True, slots=True, eq=False)
class ParsedPredictions:
    """A parsed prediction file; every array is in index order (row i = test example i).

    The arrays are read-only.
    """

    file: str  # display name, as the caller gave it
    format: PredictionFormat
    # classification: int64 codes (positions in manifest.labels); regression: float64 values
    labels: npt.NDArray[np.int64] | npt.NDArray[np.float64]
    modules: tuple[tuple[ModuleCall, ...], ...] | None  # ELUE format only
    exit_layers: npt.NDArray[np.int64] | None  # EXIT_LAYER format only, 1-based

    @property
    def n(self) -> int:
        """The number of examples (rows)."""
        return int(self.labels.shape[0])


def parse_prediction_file(
    path: Path,
    *,
    manifest: TaskManifest,
    n_rows: int,
    file_name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
) -> ParsedPredictions:
    """Parse the prediction file at `path`; see `parse_predictions`.

    The size is checked with `stat()` first: an oversize file is refused without being read.
    `OSError`s (a missing or unreadable path) are the caller's to handle and pass through.
    """
    name = file_name if file_name is not None else path.name
    size = path.stat().st_size
    if size > max_bytes:
        _refuse_oversize(name, size, max_bytes)
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)  # + 1: a file that grew after stat() is still caught
    return parse_predictions(
        data,
        manifest=manifest,
        n_rows=n_rows,
        file_name=name,
        max_bytes=max_bytes,
        max_problems=max_problems,
    )


def parse_predictions(
    data: bytes,
    *,
    manifest: TaskManifest,
    n_rows: int,
    file_name: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
) -> ParsedPredictions:
    """Parse a prediction file's bytes for a task whose public test set has `n_rows` rows.

    Raises `PredictionFileError` listing every problem (each with file, line and column) if the
    file cannot be accepted as a whole; raises nothing else for any `data`. `n_rows` below 1 is a
    programming error (`ValueError`).
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if len(data) > max_bytes:
        _refuse_oversize(file_name, len(data), max_bytes)
    return _Parser(manifest, n_rows, file_name, max_problems).parse(data)


# --------------------------------------------------------------------------------------------
# Internals


def _refuse_oversize(file_name: str, size: int, max_bytes: int) -> None:
    problem = Problem(f"file is {size} bytes, the limit is {max_bytes}", file=file_name)
    raise PredictionFileError(f"{file_name}: 1 problem", [problem])


def _show(value: str, limit: int = 60) -> str:
    """A found value for a message: quoted, escaped, shortened."""
    if len(value) > limit:
        value = value[:limit] + "..."
    return json.dumps(value, ensure_ascii=False)


def _clean(field: str) -> str:
    """Strip surrounding whitespace and one pair of double quotes wrapping the whole field."""
    field = field.strip()
    if len(field) >= 2 and field[0] == '"' and field[-1] == '"':
        field = field[1:-1].strip()
    return field


def _is_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _small_int(digits: str) -> int | None:
    """The value of an ASCII digit string, or None when it has more than 15 significant digits.

    (Bounds every value we compare and avoids int()'s digit limit on huge strings.)
    """
    significant = digits.lstrip("0")
    if len(significant) > 15:
        return None
    return int(significant) if significant else 0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class _Problems:
    """Collects problems up to a cap, counting the rest."""

    __slots__ = ("cap", "file", "items", "total")

    def __init__(self, file: str, cap: int) -> None:
        self.file = file
        self.cap = max(1, cap)
        self.items: list[Problem] = []
        self.total = 0

    def add(self, text: str, line: int | None = None, column: str | None = None) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append(Problem(text, file=self.file, line=line, column=column))

    def raise_if_any(self) -> None:
        if self.total:
            self.fail()

    def fail(self) -> NoReturn:
        """Raise the collected problems (there must be at least one)."""
        items = list(self.items)
        hidden = self.total - len(items)
        if hidden:
            items.append(
                Problem(
                    f"{_plural(hidden, 'more problem')} not shown "
                    f"(only the first {len(self.items)} are listed)",
                    file=self.file,
                )
            )
        raise PredictionFileError(f"{self.file}: {_plural(self.total, 'problem')}", items)


_ROLE_OF_NAME: Final = {
    "index": "index",
    "prediction": "prediction",
    "pred": "prediction",
    "modules": "modules",
    "exit_layer": "exit_layer",
}


class _Parser:
    __slots__ = (
        "entry_cache",
        "file",
        "int_labels",
        "label_codes",
        "label_list",
        "manifest",
        "modules_cache",
        "n_rows",
        "problems",
        "regression",
    )

    def __init__(self, manifest: TaskManifest, n_rows: int, file: str, max_problems: int) -> None:
        self.manifest = manifest
        self.n_rows = n_rows
        self.file = file
        self.problems = _Problems(file, max_problems)
        self.regression = manifest.label_kind is LabelKind.REGRESSION
        self.label_codes = {label: code for code, label in enumerate(manifest.labels)}
        # Labels that are canonical integers ("0", "1", "-1"), for the "1.0" spelling.
        self.int_labels = {
            label: code
            for code, label in enumerate(manifest.labels)
            if _CANONICAL_INT_RE.fullmatch(label) and label != "-0"
        }
        shown = manifest.labels if len(manifest.labels) <= 20 else (*manifest.labels[:20], "...")
        self.label_list = ", ".join(shown)
        # modules string -> (calls, problem texts); entry string -> ModuleCall or problem text
        self.modules_cache: dict[str, tuple[tuple[ModuleCall, ...], tuple[str, ...]]] = {}
        self.entry_cache: dict[str, ModuleCall | str] = {}

    # ---- whole file ------------------------------------------------------------------------

    def parse(self, data: bytes) -> ParsedPredictions:
        text = self._decode(data)
        if text is None:
            self.problems.fail()
        lines = text.split("\n")
        # A CR right before LF is left in place (stripping fields and blank-line checks remove
        # it): that is cheaper than replacing every CRLF. Any other CR is a line end (old Mac).
        if "\r" in text and text.count("\r") != sum(1 for line in lines if line[-1:] == "\r"):
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        header_at = next((i for i, line in enumerate(lines) if line and not line.isspace()), None)
        if header_at is None:
            self.problems.add(
                "file is empty: expected a header line index<TAB>prediction and one row per "
                f"test example ({self.n_rows} rows)"
            )
            self.problems.fail()
        columns = self._header(lines[header_at].split("\t"), header_at + 1)
        if columns is None:
            self.problems.fail()
        return self._rows(lines, header_at + 1, columns)

    def _decode(self, data: bytes) -> str | None:
        nul = data.find(b"\x00")
        if nul >= 0:
            line = data.count(b"\n", 0, nul) + 1
            hint = (
                " (it looks like UTF-16: save it as UTF-8)"
                if data[:2] in (b"\xff\xfe", b"\xfe\xff")
                else ""
            )
            self.problems.add(
                f"file is binary: NUL byte at byte offset {nul} (line {line}){hint}; "
                "expected a UTF-8 text TSV file",
                line=line,
            )
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = exc.start
            line = data.count(b"\n", 0, offset) + 1
            self.problems.add(
                f"file is not valid UTF-8: byte 0x{data[offset]:02x} at byte offset {offset} "
                f"(line {line}); expected a UTF-8 text TSV file",
                line=line,
            )
            return None
        return text[1:] if text.startswith("\ufeff") else text

    # ---- header ----------------------------------------------------------------------------

    def _header(self, raw: list[str], line: int) -> _Columns | None:
        """The column layout, or None when rows cannot be read (problems were added)."""
        add = self.problems.add
        names = [_clean(name).lower() for name in raw]
        first = names[0]
        if first not in _ROLE_OF_NAME:
            if _looks_numeric(first):
                add(
                    f"missing header: line {line} looks like a data row "
                    f"({_show(raw[0].strip())} in the first column); {_HEADER_HINT}",
                    line=line,
                )
                return None
            if len(names) == 1 and ("," in first or ";" in first or " " in first):
                add(
                    f"header {_show(first)} has no tab: the file must be tab-separated; "
                    + _HEADER_HINT,
                    line=line,
                )
                return None
        positions: dict[str, int] = {}
        for pos, name in enumerate(names):
            role = _ROLE_OF_NAME.get(name)
            if role is None:
                what = f"unknown column {_show(name)}" if name else f"column {pos + 1} has no name"
                add(
                    f"{what}: expected index, then prediction (or pred), and optionally "
                    "modules or exit_layer",
                    line=line,
                    column=name or None,
                )
            elif role in positions:
                earlier = positions[role]
                add(
                    f"duplicate column {_show(name)} (column {pos + 1}): column {earlier + 1}, "
                    f"{_show(names[earlier])}, is already the {role} column",
                    line=line,
                    column=name,
                )
            else:
                positions[role] = pos
        fatal = False
        if "index" not in positions:
            add(f"no index column; {_HEADER_HINT}", line=line, column="index")
            fatal = True
        elif positions["index"] != 0:
            add(
                f"index must be the first column, found {_show(first)} first",
                line=line,
                column="index",
            )
        if "prediction" not in positions:
            add(
                "no prediction column: expected a column named prediction (or pred) after "
                "index; exit layers go in an exit_layer column of the same file",
                line=line,
                column="prediction",
            )
            fatal = True
        if "modules" in positions and "exit_layer" in positions:
            add(
                "a file has either a modules column or an exit_layer column, not both",
                line=line,
                column="exit_layer",
            )
        if fatal:
            return None
        return _Columns(names, positions)

    # ---- rows ------------------------------------------------------------------------------

    def _rows(self, lines: list[str], start: int, cols: _Columns) -> ParsedPredictions:
        add = self.problems.add
        n_rows = self.n_rows
        last = n_rows - 1
        width = len(cols.names)
        index_pos = cols.positions["index"]
        pred_pos = cols.positions["prediction"]
        pred_name = cols.names[pred_pos]
        modules_pos = cols.positions.get("modules", -1)
        exit_pos = cols.positions.get("exit_layer", -1)
        regression = self.regression
        label_codes = self.label_codes

        first_line = [0] * n_rows  # physical line of each index, 0 = not seen
        labels: list[float] = [0] * n_rows  # classification codes are ints in here
        modules: list[tuple[ModuleCall, ...]] = [()] * n_rows if modules_pos >= 0 else []
        exits = [0] * n_rows if exit_pos >= 0 else []
        rows = 0

        for i in range(start, len(lines)):
            text = lines[i]
            if not text or text.isspace():
                continue
            rows += 1
            line = i + 1
            fields = text.split("\t")
            if len(fields) != width:
                hint = (
                    "; fields must be separated by tabs"
                    if len(fields) < width and (" " in text.strip() or "," in text)
                    else ""
                )
                add(
                    f"found {len(fields)} field{'s' if len(fields) != 1 else ''}, expected "
                    f"{width} ({', '.join(cols.names)}){hint}",
                    line=line,
                )
                continue

            # index
            raw = fields[index_pos].strip()
            if raw[:1] == '"':
                raw = _clean(raw)
            if raw.isdigit() and raw.isascii():
                idx = int(raw) if len(raw) <= 15 else _small_int(raw)
            else:
                idx = None
            if idx is not None and idx <= last:
                seen = first_line[idx]
                if seen:
                    add(
                        f"index {idx} appears twice: on line {seen} and on line {line}",
                        line=line,
                        column="index",
                    )
                    idx = None
                else:
                    first_line[idx] = line
            else:
                self._bad_index(raw, line)
                idx = None

            # prediction
            raw = fields[pred_pos].strip()
            if raw[:1] == '"':
                raw = _clean(raw)
            if regression:
                value = self._float(raw, line, pred_name)
                if value is not None and idx is not None:
                    labels[idx] = value
            else:
                code = label_codes.get(raw)
                if code is None:
                    code = self._label_fallback(raw, line, pred_name)
                if code is not None and idx is not None:
                    labels[idx] = code

            # optional column
            if modules_pos >= 0:
                raw = fields[modules_pos].strip()
                if raw[:1] == '"':
                    raw = _clean(raw)
                parsed = self.modules_cache.get(raw)
                if parsed is None:
                    parsed = self._parse_modules(raw)
                    if len(self.modules_cache) < _CACHE_LIMIT:
                        self.modules_cache[raw] = parsed
                calls, errors = parsed
                for error in errors:
                    add(error, line=line, column=cols.names[modules_pos])
                if idx is not None:
                    modules[idx] = calls
            if exit_pos >= 0:
                raw = fields[exit_pos].strip()
                if raw[:1] == '"':
                    raw = _clean(raw)
                layer = _small_int(raw) if _is_digits(raw) else None
                if layer is None or not 1 <= layer <= MAX_EXIT_LAYER:
                    add(
                        f"exit_layer {_show(raw)} is not valid: expected an integer from 1 to "
                        f"{MAX_EXIT_LAYER} (the 1-based layer the example exited at)",
                        line=line,
                        column=cols.names[exit_pos],
                    )
                elif idx is not None:
                    exits[idx] = layer

        if rows == 0:
            add(f"file has a header but no data rows: expected {n_rows} rows, one per test example")
            self.problems.fail()
        if rows != n_rows:
            add(f"found {rows} rows, expected {n_rows} (one per test example)")
        missing = [i for i, seen in enumerate(first_line) if not seen]
        if missing:
            if len(missing) == 1:
                text = f"index {missing[0]} is missing"
            else:
                few = ", ".join(str(i) for i in missing[:10])
                more = ", ..." if len(missing) > 10 else ""
                text = f"{len(missing)} indexes are missing: {few}{more}"
            add(f"{text} (every index 0..{last} must appear exactly once)", column="index")
        self.problems.raise_if_any()

        label_array: npt.NDArray[np.int64] | npt.NDArray[np.float64]
        if regression:
            label_array = np.array(labels, dtype=np.float64)
        else:
            label_array = np.array(labels, dtype=np.int64)
        label_array.flags.writeable = False
        exit_array: npt.NDArray[np.int64] | None = None
        if exit_pos >= 0:
            exit_array = np.array(exits, dtype=np.int64)
            exit_array.flags.writeable = False
        if modules_pos >= 0:
            fmt = PredictionFormat.ELUE
        elif exit_pos >= 0:
            fmt = PredictionFormat.EXIT_LAYER
        else:
            fmt = PredictionFormat.SIMPLE
        return ParsedPredictions(
            file=self.file,
            format=fmt,
            labels=label_array,
            modules=tuple(modules) if modules_pos >= 0 else None,
            exit_layers=exit_array,
        )

    # ---- fields ----------------------------------------------------------------------------

    def _bad_index(self, raw: str, line: int) -> None:
        expected = f"expected an integer from 0 to {self.n_rows - 1}"
        if not raw:
            text = f"index is empty: {expected}"
        elif _is_digits(raw) or (raw[0] == "-" and _is_digits(raw[1:])):
            text = f"index {_show(raw)[1:-1]} is out of range: expected 0..{self.n_rows - 1}"
        else:
            text = f"index {_show(raw)} is not an integer: {expected}"
        self.problems.add(text, line=line, column="index")

    def _label_fallback(self, raw: str, line: int, column: str) -> int | None:
        match = _INT_DECIMAL_RE.fullmatch(raw) if self.int_labels else None
        if match is not None:
            code = self.int_labels.get(match.group(1))
            if code is not None:
                return code
        if raw:
            text = f"label {_show(raw)} is not one of {self.label_list}"
        else:
            text = f"label is empty: expected one of {self.label_list}"
        self.problems.add(text, line=line, column=column)
        return None

    def _float(self, raw: str, line: int, column: str) -> float | None:
        problem: str | None = None
        value = math.nan
        if not raw:
            problem = "prediction is empty"
        elif not raw.isascii() or "_" in raw:
            problem = f"prediction {_show(raw)} is not a number"
        else:
            try:
                value = float(raw)
            except ValueError:
                problem = f"prediction {_show(raw)} is not a number"
            else:
                if math.isnan(value):
                    problem = f"prediction {_show(raw)} is NaN"
                elif math.isinf(value):
                    too_large = "inf" not in raw.lower()
                    problem = (
                        f"prediction {_show(raw)} is {'too large' if too_large else 'infinite'}"
                    )
        if problem is None:
            return value
        self.problems.add(
            f"{problem}: expected a finite decimal number such as 3.25",
            line=line,
            column=column,
        )
        return None

    def _parse_modules(self, raw: str) -> tuple[tuple[ModuleCall, ...], tuple[str, ...]]:
        form = f"expected ;-separated entries {_MODULES_FORM}"
        if not raw:
            return (), (f"modules is empty: {form}",)
        parts = raw.split(";")
        if len(parts) > MAX_MODULE_ENTRIES:
            return (), (
                f"modules has {len(parts)} entries, the limit is {MAX_MODULE_ENTRIES} per row",
            )
        calls: list[ModuleCall] = []
        errors: list[str] = []
        cache = self.entry_cache
        for number, part in enumerate(parts, 1):
            entry = cache.get(part)
            if entry is None:
                entry = _parse_entry(part)
                if len(cache) < _CACHE_LIMIT:
                    cache[part] = entry
            if isinstance(entry, ModuleCall):
                calls.append(entry)
            else:
                sep = " " if entry.startswith("is ") else ": "
                errors.append(f"modules entry {number} {_show(part.strip())}{sep}{entry}")
        if errors:
            return (), tuple(errors)
        return tuple(calls), ()


@dataclass(frozen=True, slots=True)
class _Columns:
    names: list[str]  # normalised header names, in file order
    positions: dict[str, int]  # role -> column position (first occurrence)


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _parse_entry(part: str) -> ModuleCall | str:
    """One `(<shape>),<name>` entry, or the text of what is wrong with it."""
    if not part.strip():
        return f"is empty: expected {_MODULES_FORM}"
    match = _ENTRY_RE.fullmatch(part)
    if match is None:
        return f"is malformed: expected {_MODULES_FORM}"
    shape_text, name = match.groups()
    dims_text = [d.strip() for d in shape_text.split(",")]
    if len(dims_text) > 1 and not dims_text[-1]:
        dims_text.pop()  # (768,) as Python prints a one-element tuple
    if dims_text == [""]:
        return f"shape is empty: {_SHAPE_FORM}"
    if len(dims_text) > MAX_SHAPE_DIMS:
        return f"shape has {len(dims_text)} dimensions, the limit is {MAX_SHAPE_DIMS}"
    dims: list[int] = []
    for d in dims_text:
        if _is_digits(d):
            value = _small_int(d)
            if value is None or value > MAX_DIM:
                return f"dimension {_show(d)[1:-1]} is above the limit {MAX_DIM}"
            if value == 0:
                return f"dimension 0 is not positive: {_SHAPE_FORM}"
            dims.append(value)
        elif d[:1] == "-" and _is_digits(d[1:]):
            return f"dimension {_show(d)[1:-1]} is not positive: {_SHAPE_FORM}"
        else:
            return f"dimension {_show(d)} is not an integer: {_SHAPE_FORM}"
    if not name:
        return f"module name is missing: expected {_MODULES_FORM}"
    if len(name) > MAX_MODULE_NAME_LEN:
        return f"module name is {len(name)} characters long, the limit is {MAX_MODULE_NAME_LEN}"
    if _MODULE_NAME_RE.fullmatch(name) is None:
        return (
            f"module name {_show(name)} is not valid: expected a letter or _ followed by "
            "letters, digits, _ . or -, e.g. layer_1"
        )
    return ModuleCall(name=name, shape=tuple(dims))


# --------------------------------------------------------------------------------------------
# ElasticBERT's second file: the exit layers alone (`index<TAB>exit_layer`)


def parse_exit_layer_file(
    path: Path,
    *,
    n_rows: int,
    file_name: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
) -> npt.NDArray[np.int64]:
    """The 1-based exit layer of every test example, in index order, from a file with header
    `index<TAB>exit_layer` (ElasticBERT's `{task}_infer_exit_layer_{threshold}.tsv`).

    Same tolerances and same kind of problems as `parse_predictions`; raises
    `PredictionFileError` listing every problem.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    size = path.stat().st_size
    if size > max_bytes:
        _refuse_oversize(file_name, size, max_bytes)
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        _refuse_oversize(file_name, len(data), max_bytes)
    problems = _Problems(file_name, max_problems)
    add = problems.add
    if b"\x00" in data:
        add("file is binary (NUL byte); expected a UTF-8 text TSV file index<TAB>exit_layer")
        problems.fail()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        add(
            f"file is not valid UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            f"(line {line}); expected a UTF-8 text TSV file",
            line=line,
        )
        problems.fail()
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    hint = "expected a header line index<TAB>exit_layer and one row per test example"
    if header_at is None:
        add(f"file is empty: {hint} ({n_rows} rows)")
        problems.fail()
    header = [_clean(name).lower() for name in lines[header_at].split("\t")]
    if header != ["index", "exit_layer"]:
        found = "\t".join(header)
        add(f"header is {_show(found)}: {hint}", line=header_at + 1)
        problems.fail()
    first_line = [0] * n_rows
    exits = [0] * n_rows
    rows = 0
    for i in range(header_at + 1, len(lines)):
        raw_line = lines[i]
        if not raw_line.strip():
            continue
        rows += 1
        line = i + 1
        fields = [_clean(f) for f in raw_line.split("\t")]
        if len(fields) != 2:
            add(f"found {len(fields)} fields, expected 2 (index, exit_layer)", line=line)
            continue
        raw_index, raw_layer = fields
        idx = _small_int(raw_index) if _is_digits(raw_index) else None
        if idx is None or idx >= n_rows:
            add(
                f"index {_show(raw_index)} is not valid: expected an integer from 0 to "
                f"{n_rows - 1}",
                line=line,
                column="index",
            )
            idx = None
        elif first_line[idx]:
            add(
                f"index {idx} appears twice: on line {first_line[idx]} and on line {line}",
                line=line,
                column="index",
            )
            idx = None
        else:
            first_line[idx] = line
        layer = _small_int(raw_layer) if _is_digits(raw_layer) else None
        if layer is None or not 1 <= layer <= MAX_EXIT_LAYER:
            add(
                f"exit_layer {_show(raw_layer)} is not valid: expected an integer from 1 to "
                f"{MAX_EXIT_LAYER} (the 1-based layer the example exited at)",
                line=line,
                column="exit_layer",
            )
        elif idx is not None:
            exits[idx] = layer
    if rows != n_rows:
        add(f"found {rows} rows, expected {n_rows} (one per test example)")
    missing = [i for i, seen in enumerate(first_line) if not seen]
    if missing and rows:
        few = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
        add(
            f"{len(missing)} index(es) missing: {few} (every index 0..{n_rows - 1} must appear "
            "exactly once)",
            column="index",
        )
    problems.raise_if_any()
    out = np.array(exits, dtype=np.int64)
    out.flags.writeable = False
    return out


def write_with_exit_layers(
    parsed: ParsedPredictions,
    exit_layers: npt.NDArray[np.int64],
    manifest: TaskManifest,
    target: Path,
) -> None:
    """Write `index<TAB>prediction<TAB>exit_layer`: a prediction file and its exit-layer file as
    the one-file EXIT_LAYER format (regression values as Python's repr, which reads back exactly).
    """
    regression = manifest.label_kind is LabelKind.REGRESSION
    with target.open("w", encoding="utf-8", newline="\n") as out:
        out.write("index\tprediction\texit_layer\n")
        for i, (value, layer) in enumerate(
            zip(parsed.labels.tolist(), exit_layers.tolist(), strict=True)
        ):
            label = repr(float(value)) if regression else manifest.labels[int(value)]
            out.write(f"{i}\t{label}\t{layer}\n")

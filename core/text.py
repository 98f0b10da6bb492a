"""Text from users: control characters refused, names normalised, CSV cells neutralised.

One place for the rules every input path uses (API schemas, form handlers, query parameters,
the CLI through the API):

- `SafeText` (one line): no C0 or C1 control character (U+0000-U+001F, U+007F-U+009F).
- `SafeMultiline` (descriptions): the same, but tab, newline and carriage return are allowed
  (browsers send a textarea's line breaks as CRLF).
- `SafeName` (submission, paper entry, display and token names): NFKC-normalised and stripped,
  then refused if it holds a control character, a bidi override or isolate (U+202A-U+202E,
  U+2066-U+2069) or a zero-width character (U+200B-U+200D, U+2060, U+FEFF). Refused rather than
  removed: names are shown to everyone and must be unique per owner, so a name that silently
  differs from what was typed (or two names that look alike) is worse than a clear 422.

The checks raise ValueError (pydantic turns it into a 422 naming the field); `text_problem`
and `name_problem` return the message for hand-written form and multipart handlers.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
_ZERO_WIDTH = frozenset({0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF})
_MULTILINE_OK = frozenset("\t\n\r")
CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` cannot be accepted as text (a control character), or None."""
    for position, char in enumerate(value, start=1):
        if is_control(char) and not (multiline and char in _MULTILINE_OK):
            allowed = " (only tab and line breaks are allowed)" if multiline else ""
            return (
                f"control character U+{ord(char):04X} at position {position} is not "
                f"allowed{allowed}"
            )
    return None


def has_control(value: str) -> bool:
    return text_problem(value) is not None


def normalise_name(value: str) -> str:
    """NFKC-normalised and stripped (check it with `name_problem`)."""
    return unicodedata.normalize("NFKC", value).strip()


def name_key(value: str) -> str:
    """The key names are unique under (per owner; operator entries among themselves): the
    normalised name, case-folded, runs of white space made one space. "BERT  Small" and
    "bert small" are the same name."""
    return " ".join(normalise_name(value).casefold().split())


def name_problem(value: str) -> str | None:
    """Why a (normalised) name cannot be accepted, or None."""
    for position, char in enumerate(value, start=1):
        code = ord(char)
        if is_control(char):
            return f"control character U+{code:04X} at position {position} is not allowed"
        if code in _BIDI:
            return (
                f"bidirectional control character U+{code:04X} at position {position} is not "
                "allowed in names"
            )
        if code in _ZERO_WIDTH:
            return (
                f"zero-width character U+{code:04X} at position {position} is not allowed in names"
            )
    return None


def _line(value: str) -> str:
    if (problem := text_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _multiline(value: str) -> str:
    if (problem := text_problem(value, multiline=True)) is not None:
        raise ValueError(problem)
    return value


def _name(value: str) -> str:
    value = normalise_name(value)
    if (problem := name_problem(value)) is not None:
        raise ValueError(problem)
    return value


SafeText = Annotated[str, AfterValidator(_line)]
SafeMultiline = Annotated[str, AfterValidator(_multiline)]
SafeName = Annotated[str, AfterValidator(_name)]


def csv_cell(value: str | int | float) -> str | int | float:
    """A CSV cell that a spreadsheet will not read as a formula (OWASP CSV injection advice).

    Strings starting with =, +, -, @, tab or carriage return get a leading apostrophe; numbers
    (negative deltas included) are left as they are.
    """
    if isinstance(value, str) and value.startswith(CSV_TRIGGERS):
        return "'" + value
    return value

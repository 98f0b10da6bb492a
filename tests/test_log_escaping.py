"""Log lines cannot be forged: control characters in messages and exceptions are escaped."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from core.logging_setup import JsonFormatter, SafeFormatter, TextFormatter

HOSTILE = "name\n2026-01-01 00:00:00,000 ERROR MainProcess forged: owned\x1b[2J\r\u2028\x9b"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d ")


def _log(formatter: logging.Formatter) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"escape-test-{type(formatter).__name__}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("user sent %s", HOSTILE)
        try:
            raise ValueError(HOSTILE)
        except ValueError:
            logger.exception("failed on %r", "x")
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


@pytest.mark.parametrize(
    "formatter",
    [TextFormatter(), SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")],
)
def test_text_lines_cannot_be_forged(formatter: logging.Formatter) -> None:
    text = _log(formatter)
    lines = text.splitlines()
    records = [line for line in lines if not line.startswith("  | ")]
    assert len(records) == 2  # the two records, nothing forged at the start of a line
    assert all(RECORD_START.match(line) for line in records)
    assert "\x1b" not in text
    assert "\r" not in text
    assert "\u2028" not in text
    assert "\x9b" not in text
    assert "\\x1b[2J" in records[0]
    assert "ValueError: name" in text


def test_json_lines_escape_every_control_character() -> None:
    text = _log(JsonFormatter())
    lines = text.splitlines()
    assert len(lines) == 2
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", text.replace("\n", ""))
    assert json.loads(lines[0])["message"] == f"user sent {HOSTILE}"
    assert HOSTILE in json.loads(lines[1])["exception"]

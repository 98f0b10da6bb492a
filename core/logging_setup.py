"""Log lines as JSON (or text), each carrying the submission it is about.

A worker task sets the submission in a context variable for the time it runs
(`submission_context`); `SubmissionFilter` copies it onto every record, so every line a task
logs (its own, the pipeline's, Celery's) carries `submission_id` without anyone passing it.
Lines the worker's main process logs about a task (Celery's "received") get it from the task's
arguments, which Celery logs.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from typing import Any

_submission: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "paretoboard_submission", default=None
)
_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("paretoboard_job", default=None)
# Celery's argsrepr of our tasks starts with the submission id: "(12, 'ab12...', ...)".
_ARGS_ID = re.compile(r"^\[?\(?\s*(\d+)\s*,")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Control characters (C0 but tab, DEL, C1) and line/paragraph separators: in a text line they
# could end the line early or drive the terminal (ANSI), forging log lines from user input.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# What JSON leaves raw with ensure_ascii=False (it always escapes C0 itself).
_JSON_RAW_CONTROL = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """`text` on one line: newlines as `\\n`, other control characters as `\\xNN`/`\\uNNNN`."""

    def one(match: re.Match[str]) -> str:
        char = match.group()
        if char == "\n":
            return "\\n"
        if char == "\r":
            return "\\r"
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _CONTROL.sub(one, text)


_Token = tuple[contextvars.Token[int | None], contextvars.Token[str | None]]


def set_submission(submission_id: int | None, job_id: str | None = None) -> _Token:
    """Make later log lines of this context carry the submission; returns a reset token."""
    return (_submission.set(submission_id), _job.set(job_id))


def reset_submission(token: _Token) -> None:
    _submission.reset(token[0])
    _job.reset(token[1])


@contextlib.contextmanager
def submission_context(submission_id: int | None, job_id: str | None = None) -> Iterator[None]:
    """Every line logged inside the block carries `submission_id` (and `job_id`)."""
    token = set_submission(submission_id, job_id)
    try:
        yield
    finally:
        reset_submission(token)


def _from_celery_args(record: logging.LogRecord) -> int | None:
    """The submission id in a Celery line about a task ("Task ... received", argsrepr)."""
    args = record.args
    if isinstance(args, dict):
        found = _ARGS_ID.match(str(args.get("args", "")))
        if found:
            return int(found.group(1))
    return None


class SubmissionFilter(logging.Filter):
    """Adds `submission_id` and `job_id` to every record (None outside a submission's task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "submission_id", None) is None:
            record.submission_id = _submission.get() or _from_celery_args(record)
        if getattr(record, "job_id", None) is None:
            record.job_id = _job.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, submission id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "submission_id": getattr(record, "submission_id", None),
            "job_id": getattr(record, "job_id", None),
            "process": record.processName,
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line and not key.startswith("_"):
                line[key] = value if _jsonable(value) else repr(value)
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info))
        text = json.dumps(line, ensure_ascii=False, default=str)
        return _JSON_RAW_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _jsonable(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


class SafeFormatter(logging.Formatter):
    """A text formatter whose records cannot forge other records.

    The message is escaped onto one line; a traceback keeps its lines, each after the first
    prefixed with `  | ` (so nothing in an exception's text can start a line of its own), with
    the other control characters escaped.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_control(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802
        return _continuation(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return _continuation(super().formatStack(stack_info))


def _continuation(text: str) -> str:
    return "\n".join("  | " + escape_control(line) for line in text.split("\n"))


class TextFormatter(SafeFormatter):
    """The usual text line, with `[submission N]` when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(processName)s %(name)s%(where)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        sid = getattr(record, "submission_id", None)
        record.where = f" [submission {sid}]" if sid is not None else ""
        return super().format(record)


def make_handler(fmt: str) -> logging.Handler:
    """A stderr handler with the submission filter and the JSON ("json") or text formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SubmissionFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def configure_logging(fmt: str, level: str | int = "INFO") -> None:
    """Send every logger's lines (root and all below it) to stderr in `fmt`."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(fmt))
    root.setLevel(level)
    logging.captureWarnings(True)


def uvicorn_log_config(fmt: str, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn (its access and error lines in `fmt`)."""
    formatter = (
        "core.logging_setup.JsonFormatter" if fmt == "json" else "core.logging_setup.SafeFormatter"
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"submission": {"()": "core.logging_setup.SubmissionFilter"}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["submission"],
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"level": level},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"level": level},
        },
    }

"""One error hierarchy for the whole service; the web layer maps `status_code` to HTTP."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One specific thing wrong with an input: where it is and what was expected."""

    problem: str
    file: str | None = None
    line: int | None = None
    column: str | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        """Serialise for JSON error bodies (`details` entries)."""
        return asdict(self)

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        col = f" [{self.column}]" if self.column else ""
        return f"{where}{col}: {self.problem}" if where else f"{self.problem}{col}"


class ParetoboardError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[Problem] = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class NotFoundError(ParetoboardError):
    status_code = 404
    code = "not_found"


class ConflictError(ParetoboardError):
    status_code = 409
    code = "conflict"


class InvalidInputError(ParetoboardError):
    """Input that cannot be accepted; `problems` lists every problem found."""

    status_code = 422
    code = "invalid_input"


class PredictionFileError(InvalidInputError):
    """A prediction file was refused; nothing from it is stored."""

    code = "invalid_prediction_file"


class TaskDataError(InvalidInputError):
    """A task folder (manifest or TSV files) could not be imported."""

    code = "invalid_task_data"


class TooLargeError(ParetoboardError):
    status_code = 413
    code = "too_large"


class StorageFullError(ParetoboardError):
    """The data folder (or the database's disk) is full: nothing was stored."""

    status_code = 507
    code = "insufficient_storage"


STORAGE_FULL_MESSAGE = (
    "The server's storage is full, so the upload could not be kept; nothing was stored. "
    "Try again later (the operators have been told)."
)

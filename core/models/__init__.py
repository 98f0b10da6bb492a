"""Database models; importing this package registers every table on `Base.metadata`."""

from core.models.board_version import BOARD_VERSION_ID, BoardChange, BoardVersion
from core.models.login_attempts import LoginAttempt
from core.models.results import Result, ResultCost, SubmissionUncertainty, TaskUncertainty
from core.models.submissions import (
    CostQueueState,
    FileRole,
    Submission,
    SubmissionFile,
    SubmissionKind,
    SubmissionWeights,
    Visibility,
)
from core.models.tasks import Task, TaskExample, TaskGold
from core.models.user_sessions import UserSession
from core.models.users import ApiToken, User, UserRole
from core.submissions.states import SubmissionState

__all__ = [
    "BOARD_VERSION_ID",
    "ApiToken",
    "BoardChange",
    "BoardVersion",
    "CostQueueState",
    "FileRole",
    "LoginAttempt",
    "Result",
    "ResultCost",
    "Submission",
    "SubmissionFile",
    "SubmissionKind",
    "SubmissionState",
    "SubmissionUncertainty",
    "SubmissionWeights",
    "Task",
    "TaskExample",
    "TaskGold",
    "TaskUncertainty",
    "User",
    "UserRole",
    "UserSession",
    "Visibility",
]

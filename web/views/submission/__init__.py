"""What a submission's page shows: its live state, its results, and where its costs come from."""

from web.views.submission.costs import (
    BINS,
    BREAKDOWN_ROWS,
    Bar,
    BreakdownRow,
    CostSummary,
    Histogram,
    cost_summaries,
    summaries,
    summarise_cost,
)
from web.views.submission.page import OwnerActions, SubmissionView, submission_view
from web.views.submission.rows import (
    STAGE_TEXT,
    STAGES,
    FileLink,
    PointRow,
    StageStep,
    Status,
    TaskResults,
    TimelineEntry,
    VerificationView,
    WeightsView,
)

__all__ = [
    "BINS",
    "BREAKDOWN_ROWS",
    "STAGES",
    "STAGE_TEXT",
    "Bar",
    "BreakdownRow",
    "CostSummary",
    "FileLink",
    "Histogram",
    "OwnerActions",
    "PointRow",
    "StageStep",
    "Status",
    "SubmissionView",
    "TaskResults",
    "TimelineEntry",
    "VerificationView",
    "WeightsView",
    "cost_summaries",
    "submission_view",
    "summaries",
    "summarise_cost",
]

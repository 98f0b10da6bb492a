"""What the home page (overall leaderboard, tracks) and the task pages show."""

from web.views.leaderboard.common import (
    PER_PAGE,
    PLOT_TOP,
    Badge,
    Direction,
    EntryMeta,
    Pager,
    badges,
    entry_meta,
    parse_millions,
)
from web.views.leaderboard.filters import HomeQuery
from web.views.leaderboard.home import (
    Cell,
    Column,
    FamilyHeader,
    HomeRow,
    HomeView,
    TaskCard,
    TrackTab,
    home_view,
)
from web.views.leaderboard.plots import PlotData, plot_body, task_plot_json
from web.views.leaderboard.task import FrontRow, SplitLink, TaskRow, TaskView, task_view

__all__ = [
    "PER_PAGE",
    "PLOT_TOP",
    "Badge",
    "Cell",
    "Column",
    "Direction",
    "EntryMeta",
    "FamilyHeader",
    "FrontRow",
    "HomeQuery",
    "HomeRow",
    "HomeView",
    "Pager",
    "PlotData",
    "SplitLink",
    "TaskCard",
    "TaskRow",
    "TaskView",
    "TrackTab",
    "badges",
    "entry_meta",
    "home_view",
    "parse_millions",
    "plot_body",
    "task_plot_json",
    "task_view",
]

"""Task names as submitters spell them: ELUE's and ElasticBERT's spellings, any case.

A name is matched after lower-casing and dropping `-`, `_` and spaces, so `SST-2`, `sst-2`, `SST2`
and `sst_2` are one task; ELUE's short names `sst` and `sts` (ElasticBERT's scripts use them) are
aliases of SST-2 and STS-B. Only imported tasks are known: `imdb` is a task once the operator has
imported IMDb.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.models import Task

# normalised alias -> normalised task name
ALIASES: dict[str, str] = {"sst": "sst2", "sts": "stsb"}
_DROP = re.compile(r"[-_\s]")


def normal_name(name: str) -> str:
    return _DROP.sub("", name.lower())


@dataclass(frozen=True, slots=True)
class TaskNames:
    """The imported tasks, looked up by any accepted spelling."""

    tasks: tuple[Task, ...]

    @classmethod
    def load(cls, session: Session) -> TaskNames:
        from core.tasks.service import list_tasks

        return cls(tuple(list_tasks(session)))

    @classmethod
    def of(cls, tasks: Iterable[Task]) -> TaskNames:
        return cls(tuple(tasks))

    def find(self, name: str) -> Task | None:
        key = normal_name(name)
        if not key:
            return None
        for task in self.tasks:
            if normal_name(task.name) == key:
                return task
        target = ALIASES.get(key)
        if target is not None:
            for task in self.tasks:
                if normal_name(task.name) == target:
                    return task
        return None

    def spellings(self, task: Task) -> list[str]:
        """The spellings shown for `task`: lower case, the aliases, the short form."""
        key = normal_name(task.name)
        out = [task.name.lower()]
        out += [alias for alias, target in ALIASES.items() if target == key]
        out.append(key)
        return list(dict.fromkeys(out))

    def known(self) -> str:
        """`SST-2 (sst-2, sst, sst2), SNLI, ...` for messages."""
        if not self.tasks:
            return "none imported yet"
        parts = []
        for task in self.tasks:
            spelled = self.spellings(task)
            parts.append(f"{task.name} ({', '.join(spelled)})" if len(spelled) > 1 else task.name)
        return ", ".join(parts)

    def unknown(self, name: str, how: str) -> str:
        """The message for a task name that matches nothing; `how` says where it was read."""
        return f"Unknown task {name!r} ({how}); known, in any case: {self.known()}"

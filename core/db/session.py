"""Engine and session factories; callers own the transaction (services only flush)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

# Connections per process. PostgreSQL's are real server processes: each web process (`serve
# --workers N`) and worker holds up to pool_size + max_overflow of them (max_connections: 100).
SQLITE_POOL_SIZE, SQLITE_MAX_OVERFLOW = 10, 30
PG_POOL_SIZE, PG_MAX_OVERFLOW = 10, 20


def pool_capacity(engine: Engine) -> int | None:
    """How many connections `engine` hands out at once (None: no such bound)."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return None
    if engine.dialect.name == "sqlite":
        return SQLITE_POOL_SIZE + SQLITE_MAX_OVERFLOW
    return PG_POOL_SIZE + PG_MAX_OVERFLOW


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`; SQLite gets foreign keys, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # Connections are cheap file handles: one for every worker thread of a web process
            # (web/app.py sizes its thread pool to fit), so a read never waits for one.
            pool = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_MAX_OVERFLOW}
        engine = create_engine(url, echo=echo, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_MAX_OVERFLOW,
        pool_timeout=10,
        # A database host that stops answering fails a request in seconds (503), not minutes.
        connect_args={"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {},
    )


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One shared engine per URL per process."""
    return make_engine(url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session

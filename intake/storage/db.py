"""Engines and sessions.

SQLite is tuned for several processes (web, worker, beat) writing one file:
WAL journal, a generous busy timeout and foreign keys on.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_lock = threading.Lock()
_engines: dict[tuple[str, bool], Engine] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, open transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Take the write lock at the start: a read that later writes would
    # otherwise fail with SQLITE_BUSY when another process wrote meanwhile.
    # It also makes SAVEPOINT work with the sqlite3 driver.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_read(conn: Any) -> None:
    # A reader: WAL lets it read beside a writer, without taking the write lock.
    conn.exec_driver_sql("BEGIN")


def make_engine(url: str, *, reader: bool = False) -> Engine:
    """A new engine for ``url`` (SQLite pragmas applied on every connection). A
    ``reader`` engine must not write: on SQLite its transactions do not take the write
    lock, so a process that mostly reads (the live process) never queues writers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_read if reader else _sqlite_begin)
    elif reader:
        # A reader that must never hang (the live process's hub): a statement or a
        # connection that takes this long is given up, and its screens say they are cut
        # off until the next read succeeds.
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                               connect_args={"connect_timeout": 5,
                                             "options": "-c statement_timeout=5000"})
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return engine


def get_engine(url: str, *, reader: bool = False) -> Engine:
    """One engine per URL (and per reader/writer) per process (engines are not
    fork-safe: call after fork)."""
    with _lock:
        engine = _engines.get((url, reader))
        if engine is None:
            engine = _engines[(url, reader)] = make_engine(url, reader=reader)
        return engine


def dispose_engines() -> None:
    """Drop pooled connections (after a fork, or at the end of a test)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


# The key under which a session's ``info`` holds the audit trail's sealing key.
AUDIT_KEY = "intake.audit_key"


def session_factory(url: str, *, audit_key: bytes | None = None) -> sessionmaker[Session]:
    """Sessions on ``url``. ``audit_key`` (``intake.audit.signing_key(settings)``) seals
    the audit events recorded in them and checks the trail; without it the web app's
    key is used, which outside the web app (a worker, a command) is an error."""
    info = {} if audit_key is None else {AUDIT_KEY: audit_key}
    return sessionmaker(bind=get_engine(url), expire_on_commit=False, info=info)


def read_session_factory(url: str) -> sessionmaker[Session]:
    """Sessions for reading only (see :func:`make_engine`'s ``reader``)."""
    return sessionmaker(bind=get_engine(url, reader=True), expire_on_commit=False)

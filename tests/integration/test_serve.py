"""`intake serve` on the embedded defaults: private Redis, SQLite, worker, beat,
gunicorn; an intake posted over HTTP ends up as a bundle in the outbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from intake.serve import free_port
from support import REPO, case, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
        assert len(children) >= 4  # redis, gunicorn, worker, beat
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert not [c for c in children if c.is_running() and c.status() != "zombie"]
    text = (tmp_path / "serve.log").read_text()
    assert "serving on" in text
    # No answer values leak into the logs (ids and states only).
    assert "saddle" not in text and "MRN" not in text

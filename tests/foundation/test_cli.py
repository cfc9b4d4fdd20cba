"""The `intake` command: doctor, db upgrade, audit verify, triage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from intake.serve import free_port
from support import CASES_DIR, REPO

pytestmark = pytest.mark.integration  # each test runs the `intake` command as a process


def run(args: list[str], env_extra: dict[str, str], stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "intake.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, input=stdin, timeout=120)


def test_db_upgrade_then_doctor_all_ok(tmp_path: Path, clean_redis: str) -> None:
    env = {"INTAKE_DATA_DIR": str(tmp_path), "INTAKE_REDIS_URL": clean_redis,
           "INTAKE_SECRET_KEY": "very-secret-value", "INTAKE_API_TOKEN": "api-token-value"}
    up = run(["db", "upgrade"], env)
    assert up.returncode == 0 and "database at revision" in up.stdout
    doc = run(["doctor", "--json"], env)
    assert doc.returncode == 0, doc.stdout + doc.stderr
    report = json.loads(doc.stdout)
    assert all(c["ok"] for c in report["checks"].values())
    assert report["configuration"]["INTAKE_SECRET_KEY"] == "****"
    assert "very-secret-value" not in doc.stdout and "api-token-value" not in doc.stdout
    assert report["checks"]["clinical_module"]["ruleset"].startswith("posterior-knee@")


def test_doctor_names_what_is_down(tmp_path: Path) -> None:
    env = {"INTAKE_DATA_DIR": str(tmp_path),
           "INTAKE_REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"}
    doc = run(["doctor"], env)
    assert doc.returncode == 1
    assert "[FAIL] broker" in doc.stdout and "[FAIL] schema" in doc.stdout
    assert "hunter2" not in doc.stdout and ":****@" in doc.stdout


def test_bad_configuration_stops_with_the_name(tmp_path: Path) -> None:
    out = run(["doctor"], {"INTAKE_DATA_DIR": str(tmp_path), "INTAKE_FHIR_TIMEOUT": "0"})
    assert out.returncode == 1
    assert "INTAKE_FHIR_TIMEOUT" in out.stderr and "Traceback" not in out.stderr


def test_audit_verify(tmp_path: Path, clean_redis: str) -> None:
    from intake import create_app

    db = tmp_path / "intake.db"
    env = {"INTAKE_DATA_DIR": str(tmp_path)}
    assert run(["db", "upgrade"], env).returncode == 0
    app = create_app({"data_dir": str(tmp_path), "redis_url": clean_redis})
    client = app.test_client()
    auth = {"Authorization": f"Bearer {(tmp_path / 'api_token').read_text().strip()}"}
    for c in ("pub-01", "pub-02"):
        answers = json.loads((CASES_DIR / f"{c}.json").read_text())["answers"]
        assert client.post("/api/intakes", json={"answers": answers},
                           headers=auth).status_code == 202
    ok = run(["audit", "verify"], env)
    assert ok.returncode == 0 and "2 events checked, 0 problems" in ok.stdout
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_events SET actor = 'someone' WHERE id = 1")
    bad = run(["audit", "verify"], env)
    assert bad.returncode == 1 and "event 1" in bad.stdout


def test_triage_command_reads_files_and_stdin(tmp_path: Path) -> None:
    good = CASES_DIR / "pub-03.json"
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    out = run(["triage", str(good), str(broken), "-"], {},
              stdin=json.dumps({"answers": {"fever": True}}) + "\n")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 1 and len(lines) == 3
    assert lines[0]["urgency"] == "emergency"
    assert lines[1]["path"] == str(broken) and lines[1]["error"]
    assert lines[2]["urgency"] == "same_day"

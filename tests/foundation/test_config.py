"""Configuration: defaults, environment, overrides; errors name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.config import SETTINGS, ConfigError, ensure_secret_key, load_settings


def test_defaults_give_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    s = load_settings({"INTAKE_DATA_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'intake.db'}"
    assert s.outbox_dir == tmp_path / "outbox"
    assert s.redis_url is None and s.fhir_base_url is None and s.fhir_auth == "none"


def test_overrides_win_over_environment(tmp_path: Path) -> None:
    s = load_settings({"INTAKE_STUCK_AFTER": "30"}, {"stuck_after": 5})
    assert s.stuck_after == 5.0
    assert load_settings({"INTAKE_STUCK_AFTER": "30"}).stuck_after == 30.0


@pytest.mark.parametrize(("env", "named"), [
    ({"INTAKE_STUCK_AFTER": "soon"}, "INTAKE_STUCK_AFTER"),
    ({"INTAKE_MAX_BODY_BYTES": "12"}, "INTAKE_MAX_BODY_BYTES"),
    ({"INTAKE_DATABASE_URL": "mysql://db/x"}, "INTAKE_DATABASE_URL"),
    ({"INTAKE_REDIS_URL": "http://localhost"}, "INTAKE_REDIS_URL"),
    ({"INTAKE_FHIR_BASE_URL": "ftp://x"}, "INTAKE_FHIR_BASE_URL"),
    ({"INTAKE_FHIR_AUTH": "kerberos"}, "INTAKE_FHIR_AUTH"),
    ({"INTAKE_FHIR_AUTH": "bearer"}, "INTAKE_FHIR_AUTH"),
    ({"INTAKE_FHIR_AUTH": "bearer", "INTAKE_FHIR_BASE_URL": "https://ehr.test/fhir"},
     "INTAKE_FHIR_TOKEN"),
    ({"INTAKE_FHIR_AUTH": "smart", "INTAKE_FHIR_BASE_URL": "https://ehr.test/fhir"},
     "INTAKE_SMART_CLIENT_ID"),
    ({"INTAKE_FHIR_AUTH": "smart", "INTAKE_FHIR_BASE_URL": "https://ehr.test/fhir",
      "INTAKE_SMART_CLIENT_ID": "c", "INTAKE_SMART_KEY_ID": "k",
      "INTAKE_SMART_PRIVATE_KEY_FILE": "/nonexistent/key.pem"}, "INTAKE_SMART_PRIVATE_KEY_FILE"),
    ({"INTAKE_LOG_LEVEL": "loud"}, "INTAKE_LOG_LEVEL"),
    ({"INTAKE_SECRET_KEY": "   "}, "INTAKE_SECRET_KEY"),
    ({"INTAKE_STUK_AFTER": "5"}, "INTAKE_STUK_AFTER"),  # a typo is not silently ignored
])
def test_bad_setting_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value).startswith(named)


def test_weak_password_hashes_only_in_the_test_suite() -> None:
    """The test suite's cheap hash profile is refused unless the suite's flag is set too."""
    assert load_settings({}).password_hash_profile == "production"
    for env, overrides in (({"INTAKE_PASSWORD_HASH_PROFILE": "test"}, {}),
                           ({}, {"password_hash_profile": "test"}),
                           ({"INTAKE_PASSWORD_HASH_PROFILE": "test", "INTAKE_TEST_SUITE": "yes"},
                            {})):
        with pytest.raises(ConfigError) as info:
            load_settings(env, overrides)
        assert str(info.value).startswith("INTAKE_PASSWORD_HASH_PROFILE")
        assert "INTAKE_TEST_SUITE=1" in str(info.value)
    allowed = load_settings({"INTAKE_PASSWORD_HASH_PROFILE": "test", "INTAKE_TEST_SUITE": "1"})
    assert allowed.password_hash_profile == "test"


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="colour"):
        load_settings({}, {"colour": "blue"})


def test_secrets_are_masked() -> None:
    s = load_settings({"INTAKE_SECRET_KEY": "topsecret", "INTAKE_API_TOKEN": "tok",
                       "INTAKE_DATABASE_URL": "postgresql://app:pw123@db.local/intake",
                       "INTAKE_REDIS_URL": "redis://:redispw@cache.local:6379/0"})
    text = repr(s.masked())
    for secret in ("topsecret", "tok'", "pw123", "redispw"):
        assert secret not in text
    assert s.masked()["INTAKE_DATABASE_URL"] == "postgresql+psycopg://app:****@db.local/intake"


def test_generated_secret_key_is_kept(tmp_path: Path) -> None:
    s = load_settings({"INTAKE_DATA_DIR": str(tmp_path)})
    first = ensure_secret_key(s)
    assert len(first) > 40 and ensure_secret_key(s) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_every_setting_has_help_and_parses_its_default() -> None:
    for s in SETTINGS:
        assert s.help and s.env.startswith("INTAKE_")
        if s.default is not None:
            s.parse(s.default)


@pytest.mark.integration  # runs the `intake` command as a process of its own
def test_worker_refuses_to_start_without_broker(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env["INTAKE_DATA_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", "import workers"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "INTAKE_REDIS_URL" in proc.stderr
    env["INTAKE_REDIS_URL"] = "redis://localhost:6379/0"
    env["INTAKE_SWEEP_INTERVAL"] = "often"
    proc = subprocess.run([sys.executable, "-c", "import workers"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "INTAKE_SWEEP_INTERVAL" in proc.stderr

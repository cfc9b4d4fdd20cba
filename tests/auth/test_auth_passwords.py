"""Passwords and user names: argon2id hashes (never the password), NFKC normalisation,
the password and name rules, and the hash upgrade at sign-in."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from intake import state
from intake.auth import users
from intake.auth.passwords import PasswordRejected, check_rules, hash_password, verify_password
from intake.kiosk.pin import configured_pin_hash
from intake.storage.models import AuditEvent, User, utcnow
from support.auth import db_snapshot, get_user, make_user, sign_in

FULL_WIDTH = "ＫｎｅｅＰａｉｎ２０２６ｘ"  # typed with a Japanese input method
HALF_WIDTH = "KneePain2026x"


def _create(app: Any, name: str, role: str, password: str) -> User:
    with state(app).sessions.begin() as s:
        return users.create_user(s, name, role, password, actor="test", now=utcnow())


@pytest.fixture
def production_db_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL hashing as in production (the other tests
    use the suite's cheap profile)."""
    return make_app(database_url, password_hash_profile="production")


@pytest.fixture
def production_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    return make_app(sqlite_url, password_hash_profile="production")


def test_the_suite_hashes_weakly_and_says_so(make_app: Callable[..., Any], sqlite_url: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(sqlite_url)
    assert "staff passwords are hashed weakly" in caplog.text
    _create(app, "nurse.kato", "practitioner", "Popliteal-cyst-41")
    assert get_user(app, "nurse.kato").password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert configured_pin_hash(state(app).settings).startswith("scrypt$16$8$1$")


def test_the_staff_pin_is_hashed_as_in_production(production_app: Any) -> None:
    assert configured_pin_hash(state(production_app).settings).startswith("scrypt$16384$8$1$")


def test_an_argon2id_hash_is_stored_never_the_password(production_db_app: Any) -> None:
    db_app = production_db_app
    password = "Popliteal-cyst-41"
    _create(db_app, "nurse.kato", "practitioner", password)
    user = get_user(db_app, "nurse.kato")
    assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify_password(user.password_hash, password)
    assert not verify_password(user.password_hash, password + "x")
    # Nowhere in the database: not in the users table, not in the audit trail.
    dump = json.dumps(db_snapshot(db_app), ensure_ascii=False)
    assert password not in dump
    created = [e for e in _audit(db_app) if e.action == "user.created"]
    assert [(e.actor, e.entity_id, e.detail) for e in created] == [
        ("test", "nurse.kato", {"role": "practitioner"})]


def _audit(app: Any) -> list[AuditEvent]:
    with state(app).sessions() as s:
        return list(s.execute(select(AuditEvent)).scalars())


@pytest.mark.parametrize(("stored", "typed"), [(FULL_WIDTH, HALF_WIDTH),
                                               (HALF_WIDTH, FULL_WIDTH)])
def test_full_and_half_width_passwords_are_the_same(auth_app: Any, stored: str,
                                                    typed: str) -> None:
    """NFKC: the same password typed on a Japanese or an English keyboard layout."""
    _create(auth_app, "desk.sato", "front_desk", stored)
    resp = sign_in(auth_app.test_client(), "desk.sato", typed)
    assert resp.status_code == 303 and resp.headers["Location"] == "/desk"
    # The name is normalised the same way (full-width letters, upper case).
    resp = sign_in(auth_app.test_client(), "ＤＥＳＫ.Ｓａｔｏ", stored)
    assert resp.status_code == 303


@pytest.mark.parametrize(("password", "message"), [
    ("Short-1a", "at least 10 characters"),
    ("ｓｈｏｒｔ１２３", "at least 10 characters"),  # 8 characters after NFKC
    ("x" * 200 + "Yz-1" * 15, "at most 256 characters"),
    ("my-name-is-ito.k!", "must not contain the user name"),
    ("MY-NAME-IS-ITO.K!", "must not contain the user name"),
    ("abababababab", "must not repeat one or two characters"),
    ("aaabbbaaabbb", "must not repeat one or two characters"),
])
def test_password_rules(auth_app: Any, password: str, message: str) -> None:
    before = db_snapshot(auth_app)
    with pytest.raises(PasswordRejected, match=message) as refused:
        _create(auth_app, "ito.k", "admin", password)
    assert password not in str(refused.value)
    assert db_snapshot(auth_app) == before


def test_a_good_password_passes_the_rules() -> None:
    check_rules("Correct-horse-battery", "ito.k")
    check_rules("膝の裏が痛い二〇二六年", "ito.k")  # Japanese passwords are fine


@pytest.mark.parametrize(("name", "stored"), [
    ("Nurse.Kato", "nurse.kato"), ("ｎｕｒｓｅ_02", "nurse_02"), ("  dr-abe ", "dr-abe")])
def test_names_are_normalised(auth_app: Any, name: str, stored: str) -> None:
    assert _create(auth_app, name, "practitioner", "Popliteal-cyst-41").name == stored


@pytest.mark.parametrize(("name", "role", "message"), [
    ("a", "admin", "2 to 64 characters"),
    ("看護師", "admin", "2 to 64 characters"),
    ("-abe", "admin", "2 to 64 characters"),
    ("dr abe", "admin", "2 to 64 characters"),
    ("x" * 65, "admin", "2 to 64 characters"),
    ("dr.abe", "doctor", "unknown role 'doctor'"),
])
def test_bad_names_and_roles_are_refused(auth_app: Any, name: str, role: str,
                                         message: str) -> None:
    before = db_snapshot(auth_app)
    with pytest.raises(users.UserError, match=message):
        _create(auth_app, name, role, "Popliteal-cyst-41")
    assert db_snapshot(auth_app) == before


def test_a_name_is_taken_whatever_its_case_or_width(db_app: Any) -> None:
    _create(db_app, "dr.abe", "practitioner", "Popliteal-cyst-41")
    before = db_snapshot(db_app)
    for same in ("dr.abe", "DR.ABE", "ｄｒ.ａｂｅ"):
        with pytest.raises(users.UserError, match="a user named 'dr.abe' already exists"):
            _create(db_app, same, "admin", "Another-password-9")
    assert db_snapshot(db_app) == before


def test_an_old_hash_is_upgraded_at_the_next_sign_in(production_app: Any) -> None:
    auth_app = production_app
    make_user(auth_app, "dr.old", "practitioner")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(HALF_WIDTH)
    with state(auth_app).sessions.begin() as s:
        s.execute(User.__table__.update().values(password_hash=weak))
    with state(auth_app).sessions.begin() as s:
        verdict = users.authenticate(s, "dr.old", HALF_WIDTH, address="192.0.2.1",
                                     now=utcnow())
        assert verdict.ok
    upgraded = get_user(auth_app, "dr.old").password_hash
    assert upgraded != weak and upgraded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify_password(upgraded, HALF_WIDTH)


def test_only_the_whole_password_matches() -> None:
    longest = "Kn33-" + "x" * 240 + "-popliteal!"
    assert len(longest) == 256  # the most the rules allow
    check_rules(longest, "dr.abe")
    stored = hash_password(longest)
    assert verify_password(stored, longest)
    assert not verify_password(stored, longest + "extra")
    assert not verify_password(stored, longest[:-1])

"""Password hashing (argon2id) and the password rules.

argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4) are used, and a
hash made with other parameters is upgraded at the next successful sign-in. The test
suite hashes with a weak, fast profile instead (``INTAKE_PASSWORD_HASH_PROFILE=test``,
which the settings refuse outside the test suite); a process uses the profile of its
settings from :func:`use_profile` on, production until then.
"""

from __future__ import annotations

import logging
import unicodedata
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)

MIN_LENGTH = 10
MAX_LENGTH = 256

# PasswordHasher arguments of each INTAKE_PASSWORD_HASH_PROFILE.
PROFILES: dict[str, dict[str, Any]] = {
    "production": {},  # argon2-cffi's defaults
    "test": {"time_cost": 1, "memory_cost": 8, "parallelism": 1},  # the least argon2 takes
}
_current = "production"


class PasswordRejected(ValueError):
    """The password breaks a rule; the message says which (never the password)."""


def use_profile(name: str) -> None:
    """Hash with profile ``name`` (the settings' ``password_hash_profile``) from now on."""
    global _current
    if name not in PROFILES:
        raise ValueError(f"unknown password hash profile {name!r}")
    if name != "production":
        log.warning("INTAKE_PASSWORD_HASH_PROFILE=%s: staff passwords are hashed weakly "
                    "(for the test suite only)", name)
    _current = name


def current_profile() -> str:
    return _current


@lru_cache(maxsize=len(PROFILES))
def _hasher(profile: str) -> PasswordHasher:
    return PasswordHasher(**PROFILES[profile])


def hasher() -> PasswordHasher:
    return _hasher(_current)


def normalise(password: str) -> str:
    # The same password typed on a Japanese or an English keyboard layout (full-width
    # or half-width characters) must match.
    return unicodedata.normalize("NFKC", password)


def check_rules(password: str, name: str) -> None:
    pw = normalise(password)
    if len(pw) < MIN_LENGTH:
        raise PasswordRejected(f"the password must have at least {MIN_LENGTH} characters")
    if len(pw) > MAX_LENGTH:
        raise PasswordRejected(f"the password must have at most {MAX_LENGTH} characters")
    if name and name.lower() in pw.lower():
        raise PasswordRejected("the password must not contain the user name")
    if len(set(pw)) < 4:
        raise PasswordRejected("the password must not repeat one or two characters")


def hash_password(password: str) -> str:
    return hasher().hash(normalise(password))


def verify_password(stored: str, candidate: str) -> bool:
    # The whole candidate: cutting it to MAX_LENGTH would let a longer one that merely
    # starts with a 256-character password match it.
    try:
        return hasher().verify(stored, normalise(candidate))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return True


def dummy_hash() -> str:
    """Verified against when the user does not exist, so the answer takes as long."""
    return _dummy_hash(_current)


@lru_cache(maxsize=len(PROFILES))
def _dummy_hash(profile: str) -> str:
    return _hasher(profile).hash("not a real password, only for timing")

"""Password hashing (argon2id) and the password rules.

argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4) are used, and a
hash made with older parameters is upgraded at the next successful sign-in.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 256


class PasswordRejected(ValueError):
    """The password breaks a rule; the message says which (never the password)."""


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    return PasswordHasher()


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


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Verified against when the user does not exist, so the answer takes as long."""
    return hasher().hash("not a real password, only for timing")

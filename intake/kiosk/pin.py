"""The staff PIN: hashed, compared in constant time, and rate-limited per client.

The PIN guards the tablet's start screen (who the patient is); the staff pages use
staff accounts (``intake.auth``). It is kept in memory only as an scrypt hash; a wrong
guess costs the guesser one scrypt computation and counts towards a lockout of their
address, so a 6-digit PIN cannot be found by trying (5 tries per 15 minutes is about
480 a day, against a million PINs).

``python -m intake.kiosk.hash_pin`` reads a PIN and prints its hash, for operators who would
rather not keep the PIN itself in the environment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from intake import throttle
from intake.config import Settings

log = logging.getLogger(__name__)

PIN_FILE = "kiosk_pin"
MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
# scrypt's cost N by INTAKE_PASSWORD_HASH_PROFILE (test: the suite's weak, fast hashes).
_N_OF_PROFILE = {"production": _N, "test": 2**4}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_pin(pin: str, salt: bytes | None = None, *, n: int = _N) -> str:
    """``scrypt$N$r$p$salt$hash`` of a PIN (salt random unless given)."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=n, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${n}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_pin(stored: str, candidate: str) -> bool:
    """True when ``candidate`` is the PIN of ``stored``; constant-time comparison."""
    try:
        _, n, r, p, salt_b64, hash_b64 = stored.split("$")
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        digest = hashlib.scrypt(candidate.encode()[:64], salt=salt, n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def configured_pin_hash(settings: Settings) -> str:
    """The hash of the staff PIN: from INTAKE_KIOSK_PIN, or from DATA_DIR/kiosk_pin.

    With no PIN configured a random 6-digit one is generated once and kept in the data
    folder, readable by the owner only (like the generated secret key), so a fresh
    `intake serve` is never open to anyone who walks up to the tablet.
    """
    n = _N_OF_PROFILE[settings.password_hash_profile]
    if settings.kiosk_pin:
        if settings.kiosk_pin.startswith("scrypt$"):
            return settings.kiosk_pin
        return hash_pin(settings.kiosk_pin, n=n)
    path = settings.data_dir / PIN_FILE
    return hash_pin(_read_or_create_pin(path), n=n)


def _read_or_create_pin(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pin = f"{secrets.randbelow(10**6):06d}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process (a second gunicorn worker) made it first
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(pin + "\n")
            log.warning("INTAKE_KIOSK_PIN is unset: a staff PIN was generated and is in %s",
                        path)
    pin = path.read_text().strip()
    if not (pin.isdigit() and 6 <= len(pin) <= 12):
        raise RuntimeError(f"{path} does not hold a PIN of 6 to 12 digits")
    return pin


def client_key(address: str | None) -> str:
    """What the limiter stores for a client: a hash of its address."""
    return hashlib.sha256((address or "unknown").encode()).hexdigest()


@dataclass(frozen=True)
class PinCheck:
    ok: bool
    locked_minutes: int = 0  # > 0: refused without checking, the client is locked out


def check_pin(session: Session, stored_hash: str, candidate: str, key: str,
              now: datetime) -> PinCheck:
    """Verify a PIN under the lockout: a locked-out client is refused unchecked.

    Runs in the caller's transaction so the failure count is committed with it.
    """
    minutes = throttle.locked_minutes(session, key, now)
    if minutes:
        return PinCheck(False, minutes)
    if verify_pin(stored_hash, candidate):
        throttle.clear(session, key)
        return PinCheck(True)
    minutes = throttle.count_failure(session, key, now, limit=MAX_FAILURES, window=WINDOW,
                                     lockout=LOCKOUT)
    if minutes:
        log.warning("staff PIN locked for a client after %d wrong attempts", MAX_FAILURES)
    return PinCheck(False, minutes)



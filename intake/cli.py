"""The `intake` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from intake.config import SETTINGS, ConfigError, Settings, load_settings


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(overrides={k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


@click.group()
@click.version_option(package_name="knee-intake")
def main() -> None:
    """Clinical intake and triage plugin (posterior knee pain)."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Overrides INTAKE_DATA_DIR.")
def serve(host: str, port: int, data_dir: Path | None) -> None:
    """Run the web app, a worker and the sweeper on this machine."""
    from intake import configure_logging
    from intake.serve import run

    settings = _settings(data_dir=data_dir)
    configure_logging(settings.log_level)
    sys.exit(run(settings, host, port))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535))
@click.option("--upstream", default=None, metavar="URL",
              help="Also be the front door of the web app at URL (unix:/path or "
                   "http://host:port), reading every request whole before handing it on. "
                   "Leave unset behind nginx (route /live/ here, the rest to gunicorn).")
def live(host: str, port: int, upstream: str | None) -> None:
    """Serve the live streams of the front-desk boards and staff pages (/live/)."""
    from intake import configure_logging
    from intake.live.server import run

    settings = _settings()
    configure_logging(settings.log_level)
    if upstream is not None and not upstream.startswith(("unix:/", "http://")):
        raise click.ClickException("--upstream must be unix:/path or http://host:port")
    sys.exit(run(settings, host=host, port=port, upstream=upstream))


@main.command()
@click.argument("paths", nargs=-1, required=True)
def triage(paths: tuple[str, ...]) -> None:
    """Triage answer files (FHIR QuestionnaireResponse or {"answers": ...}); '-' reads
    JSON Lines from standard input. One JSON line per input."""
    from intake.clinical.cli import run_triage_cli

    sys.exit(run_triage_cli(list(paths), sys.stdin, sys.stdout))


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the newest schema."""
    from intake.storage.migrate import current_revision, upgrade

    settings = _settings()
    upgrade(settings.database_url)
    click.echo(f"database at revision {current_revision(settings.database_url)}")


@main.group()
def users() -> None:
    """Staff accounts (practitioner, front_desk, admin)."""


ROLES = ("practitioner", "front_desk", "admin")  # intake.storage.models.Role, kept light


def _read_password(confirm: bool) -> str:
    """From a prompt on a terminal, else the first line of standard input (scripts)."""
    if sys.stdin.isatty():
        value: str = click.prompt("Password", hide_input=True,
                                  confirmation_prompt=confirm)
        return value
    line = sys.stdin.readline()
    if not line.strip():
        raise click.ClickException("no password on standard input")
    return line.rstrip("\r\n")


def _user_command(action: Any) -> str:
    """Run ``action(session)`` in one transaction; a refused command changes nothing and
    exits 1 with the reason. Returns the user's stored (normalised) name."""
    from intake.audit import signing_key
    from intake.auth.passwords import PasswordRejected, use_profile
    from intake.auth.users import UserError
    from intake.storage.db import session_factory
    from intake.storage.migrate import upgrade

    settings = _settings()
    use_profile(settings.password_hash_profile)
    upgrade(settings.database_url)
    sessions = session_factory(settings.database_url, audit_key=signing_key(settings))
    try:
        with sessions.begin() as session:
            name: str = action(session).name
    except (UserError, PasswordRejected) as exc:
        raise click.ClickException(str(exc)) from None
    return name


@users.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
def users_create(name: str, role: str) -> None:
    """Add a user; the password comes from a prompt or standard input."""
    from intake.auth.users import create_user
    from intake.storage.models import utcnow

    password = _read_password(confirm=True)
    stored = _user_command(
        lambda s: create_user(s, name, role, password, actor="cli", now=utcnow()))
    click.echo(f"user {stored} created ({role})")


@users.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Stop a user signing in and end their open sessions."""
    from intake.auth.users import disable_user
    from intake.live.notify import publish

    stored = _user_command(lambda s: disable_user(s, name, actor="cli"))
    publish(_settings().redis_url, "session")  # open staff screens close at once
    click.echo(f"user {stored} disabled (signed out everywhere)")


@users.command("enable")
@click.argument("name")
def users_enable(name: str) -> None:
    """Let a disabled user sign in again (and lift a lock-out)."""
    from intake.auth.users import enable_user

    stored = _user_command(lambda s: enable_user(s, name, actor="cli"))
    click.echo(f"user {stored} enabled")


@users.command("reset-password")
@click.argument("name")
def users_reset_password(name: str) -> None:
    """Set a new password (prompt or standard input); ends the user's sessions and
    lifts a lock-out."""
    from intake.auth.users import reset_password
    from intake.storage.models import utcnow

    password = _read_password(confirm=True)
    from intake.live.notify import publish

    stored = _user_command(
        lambda s: reset_password(s, name, password, actor="cli", now=utcnow()))
    publish(_settings().redis_url, "session")  # open staff screens close at once
    click.echo(f"password of {stored} reset (signed out everywhere)")


@users.command("list")
def users_list() -> None:
    """Every user with role and state (no hashes): name, role, active or disabled, and
    "locked" while a lock-out after wrong passwords lasts."""
    from sqlalchemy import select

    from intake.storage.db import session_factory
    from intake.storage.migrate import upgrade
    from intake.storage.models import User, utcnow

    settings = _settings()
    upgrade(settings.database_url)
    now = utcnow()
    with session_factory(settings.database_url)() as session:
        for user in session.execute(select(User).order_by(User.name)).scalars():
            state = "active" if user.active else "disabled"
            if user.locked_until is not None and user.locked_until > now:
                state += ", locked"
            click.echo(f"{user.name}\t{user.role}\t{state}")


@main.group()
def devices() -> None:
    """Enrolled devices: front-desk alert boards and patient tablets."""


KINDS = ("board", "tablet")  # intake.storage.models.DeviceKind, kept light


def _device_command(action: Any) -> Any:
    """Run ``action(session)`` in one transaction; a refused command changes nothing and
    exits 1 with the reason."""
    from intake.audit import signing_key
    from intake.devices.services import DeviceError
    from intake.storage.db import session_factory
    from intake.storage.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    sessions = session_factory(settings.database_url, audit_key=signing_key(settings))
    try:
        with sessions.begin() as session:
            return action(session)
    except DeviceError as exc:
        raise click.ClickException(str(exc)) from None


def _echo_code(issued: Any) -> None:
    from zoneinfo import ZoneInfo

    kind = issued.device.kind
    page = "/board" if kind == "board" else "/kiosk"
    until = issued.expires_at.astimezone(ZoneInfo(_settings().display_timezone))
    click.echo(f"one-time code for {issued.device.name} ({kind}): {issued.code[:4]}-"
               f"{issued.code[4:]}")
    click.echo(f"open {page} on the device and type the code before {until:%H:%M}")


@devices.command("add")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(KINDS))
def devices_add(name: str, kind: str) -> None:
    """Add a device and print its one-time enrollment code."""
    from intake.devices.services import add
    from intake.storage.models import utcnow

    _echo_code(_device_command(lambda s: add(s, name, kind, actor="cli", now=utcnow())))


@devices.command("code")
@click.argument("name")
def devices_code(name: str) -> None:
    """A new one-time code for a device (a new browser, or after a revocation)."""
    from intake.devices.services import new_code
    from intake.storage.models import utcnow

    _echo_code(_device_command(lambda s: new_code(s, name, actor="cli", now=utcnow())))


@devices.command("revoke")
@click.argument("name")
def devices_revoke(name: str) -> None:
    """Stop a device at once (its open streams close; it gets nothing more)."""
    from intake.devices.services import revoke
    from intake.live.notify import publish
    from intake.storage.models import utcnow

    device = _device_command(lambda s: revoke(s, name, actor="cli", now=utcnow()))
    publish(_settings().redis_url, "device", device=device.id)
    click.echo(f"device {device.name} revoked")


@devices.command("list")
def devices_list() -> None:
    """Every device: name, kind, state (active, pending, revoked, not_enrolled; a board
    "connected" while a live stream holds it) and when it was last seen (local time)."""
    from zoneinfo import ZoneInfo

    from intake.devices.services import list_devices
    from intake.storage.models import utcnow

    tz = ZoneInfo(_settings().display_timezone)
    rows = _device_command(lambda s: list_devices(s, utcnow()))
    for row in rows:
        seen = f"{row.last_seen_at.astimezone(tz):%Y-%m-%d %H:%M}" if row.last_seen_at \
            else "never"
        now_on = ", connected" if row.connected else ""
        click.echo(f"{row.name}\t{row.kind}\t{row.state}{now_on}\tlast seen {seen}")


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the audit trail: the hash chain, each event's seal and the anchor.

    Exit 0 when intact (with the count, and the newest event's id and hash to keep
    elsewhere); exit 1 on any problem, the first line naming the first broken event."""
    from intake.audit import signing_key, verify
    from intake.storage.db import session_factory
    from intake.storage.migrate import current_revision, head_revision

    settings = _settings()
    # A check must not change the database: an old schema is reported, not upgraded.
    revision, head = current_revision(settings.database_url), head_revision()
    if revision != head:
        raise click.ClickException(f"the database schema is at revision {revision}, not "
                                   f"{head}: run `intake db upgrade` first")
    with session_factory(settings.database_url)() as session:
        report = verify(session, key=signing_key(settings))
    if report.first is not None:
        click.echo(report.first.message)
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)


@main.command()
@click.option("--reference", is_flag=True, help="Print the configuration reference (Markdown).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(reference: bool, as_json: bool) -> None:
    """Show the configuration (secrets masked) and check every component."""
    if reference:
        click.echo("| variable | default | meaning |\n|---|---|---|")
        for s in SETTINGS:
            default = f"`{s.default}`" if s.default is not None else "unset"
            click.echo(f"| `{s.env}` | {default} | {s.help} |")
        return
    from intake.doctor import run_checks

    settings = _settings()
    report = run_checks(settings)
    if as_json:
        click.echo(json.dumps(report, indent=1, ensure_ascii=False))
    else:
        click.echo("Configuration:")
        for k, v in report["configuration"].items():
            click.echo(f"  {k} = {v}")
        click.echo("Checks:")
        for name, res in report["checks"].items():
            mark = "ok  " if res["ok"] else "FAIL"
            detail = ", ".join(f"{k}={v}" for k, v in res.items() if k != "ok")
            click.echo(f"  [{mark}] {name}: {detail}")
    sys.exit(0 if all(c["ok"] for c in report["checks"].values()) else 1)


if __name__ == "__main__":
    main()

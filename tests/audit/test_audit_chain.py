"""Audit tampering is detected: every kind of edit, deletion and insertion, by `verify`
and by `intake audit verify` (exit 1, the first line naming the first broken event), on
SQLite and PostgreSQL. An untouched trail verifies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, update

from intake import audit, state
from intake.audit import BreakKind
from intake.storage.models import AuditAnchor, AuditEvent, utcnow
from support.audit import (
    anchor,
    cli,
    delete_event,
    edit_event,
    event,
    forge_append,
    recompute_from,
    record_events,
    run_cli,
    verify,
)
from support.databases import sqlite_only


@pytest.mark.integration  # runs the `intake` command as a process of its own
def test_untouched_trail_verifies(trail_app: Any) -> None:
    ids = record_events(trail_app, 6)
    report = verify(trail_app)
    assert report.ok and report.first is None and report.problems == []
    assert report.checked == 6 and report.newest_id == ids[-1]
    assert report.newest_hash == event(trail_app, ids[-1]).hash
    assert report.sealed_from == ids[0] and report.unsealed == 0
    out = run_cli(trail_app, "audit", "verify")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0].startswith("6 events checked, 0 problems")
    assert report.newest_hash in out.stdout  # to keep outside the database


def _edit(column: str, value: Callable[[AuditEvent], Any]) -> Callable[[Any], None]:
    def tamper(app: Any) -> None:
        edit_event(app, 3, **{column: value(event(app, 3))})

    return tamper


def _delete_anchor(app: Any) -> None:
    with state(app).sessions.begin() as s:
        s.execute(delete(AuditAnchor))


def _alter_anchor(app: Any) -> None:
    with state(app).sessions.begin() as s:
        s.execute(update(AuditAnchor).values(last_id=5, last_hash=event(app, 5).hash))


def _delete_last_then_carry_on(app: Any) -> None:
    delete_event(app, 6)
    record_events(app, 1, actor="bob")  # the clinic works on; the gap must not vanish


def _recompute_after_edit(app: Any) -> None:
    edit_event(app, 3, detail={"n": 99})
    recompute_from(app, 3)


# (tamper, the first broken event, what verify says is wrong with it)
CASES: dict[str, tuple[Callable[[Any], None], int, BreakKind]] = {
    "edit detail": (_edit("detail", lambda e: {"n": 99}), 3, BreakKind.CONTENT),
    "edit actor": (_edit("actor", lambda e: "mallory"), 3, BreakKind.CONTENT),
    "edit time": (_edit("at", lambda e: e.at - timedelta(hours=1)), 3, BreakKind.CONTENT),
    "edit source": (_edit("source", lambda e: "192.0.2.1"), 3, BreakKind.CONTENT),
    "delete a middle event": (lambda app: delete_event(app, 3), 4, BreakKind.LINK),
    "delete the last event": (lambda app: delete_event(app, 6), 6, BreakKind.TAIL_DELETED),
    "insert a forged event": (lambda app: forge_append(app), 7, BreakKind.INSERTED),
    "insert a forged event with a guessed seal": (
        lambda app: forge_append(app, seal="0" * 64), 7, BreakKind.INSERTED),
    "edit and recompute the chain": (_recompute_after_edit, 3, BreakKind.SEAL),
    "strip a seal": (lambda app: edit_event(app, 3, key_id=None, seal=None), 3,
                     BreakKind.UNSEALED),
    "delete the last event, then carry on": (_delete_last_then_carry_on, 6,
                                             BreakKind.INCIDENT),
    "delete the anchor": (_delete_anchor, 6, BreakKind.ANCHOR_MISSING),
    "move the anchor back": (_alter_anchor, 5, BreakKind.ANCHOR_ALTERED),
}


@pytest.mark.integration  # runs the `intake` command as a process of its own
@sqlite_only
@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_detected(trail_app: Any, case: str) -> None:
    tamper, first_id, kind = CASES[case]
    assert record_events(trail_app, 6) == [1, 2, 3, 4, 5, 6]
    assert verify(trail_app).ok
    tamper(trail_app)
    report = verify(trail_app)
    assert not report.ok and report.first is not None
    assert (report.first.event_id, report.first.kind) == (first_id, kind), report.first
    assert report.first.message.startswith(f"event {first_id}")
    out = run_cli(trail_app, "audit", "verify")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == report.first.message, out.stdout
    assert "problem" in lines[1] and "0 problems" not in lines[1]


def test_every_column_is_covered(trail_app: Any) -> None:
    """Whatever column of a past event is edited, verify names that event; putting the
    value back makes the trail whole again (so each edit alone was what it found)."""
    record_events(trail_app, 5)
    original = event(trail_app, 3)
    changes: dict[str, Any] = {
        "at": original.at + timedelta(microseconds=1),
        "actor": "alice2", "action": "intake.delivered", "entity_type": "user",
        "entity_id": "intake-x", "detail": {"n": 2, "extra": 1}, "source": "10.0.0.8",
        "hash": "f" * 64, "key_id": "0" * 16, "seal": "e" * 64,
    }
    for column, value in changes.items():
        edit_event(trail_app, 3, **{column: value})
        report = verify(trail_app)
        assert report.first is not None and report.first.event_id == 3, column
        edit_event(trail_app, 3, **{column: getattr(original, column)})
        assert verify(trail_app).ok, column
    # prev_hash: the link to event 2 breaks.
    edit_event(trail_app, 3, prev_hash="a" * 64)
    report = verify(trail_app)
    assert report.first is not None and report.first.event_id == 3
    edit_event(trail_app, 3, prev_hash=original.prev_hash)
    # The id: renumbering an event breaks its seal.
    with state(trail_app).sessions.begin() as s:
        s.execute(update(AuditEvent).where(AuditEvent.id == 5).values(id=50))
    report = verify(trail_app)
    assert report.first is not None and report.first.event_id == 50


def test_the_first_break_is_reported_and_the_rest_only_counted(trail_app: Any) -> None:
    record_events(trail_app, 8)
    edit_event(trail_app, 6, actor="mallory")
    edit_event(trail_app, 3, detail={"n": -1})
    report = verify(trail_app)
    assert report.first is not None and report.first.event_id == 3
    assert report.further == 1
    assert "2 problems" in report.summary()


def test_a_missing_range_is_named(trail_app: Any) -> None:
    record_events(trail_app, 6)
    delete_event(trail_app, 3)
    delete_event(trail_app, 4)
    report = verify(trail_app)
    assert report.first is not None
    assert (report.first.event_id, report.first.kind) == (5, BreakKind.LINK)
    assert "event ids 3-4 are missing" in report.first.message


def test_a_key_change_is_covered_by_the_next_sealed_event(trail_app: Any) -> None:
    """After the secret key changes, the events sealed with the old one stay covered by
    the chain; a check with the old key finds the new events foreign."""
    record_events(trail_app, 3)
    new_key = audit.derive_key("the-rotated-secret-key")
    with state(trail_app).sessions.begin() as s:
        for i in range(2):
            audit.record(s, actor="system", action="intake.triaged", entity_type="intake",
                         entity_id=f"i{i}", key=new_key)
    with state(trail_app).sessions() as s:
        assert audit.verify(s, key=new_key).ok
    old = verify(trail_app)
    assert old.first is not None
    assert (old.first.event_id, old.first.kind) == (4, BreakKind.OTHER_KEY)
    # A forged rewrite of an old-key event is still caught, through the chain.
    edit_event(trail_app, 2, detail={"n": 42})
    recompute_from(trail_app, 2)
    with state(trail_app).sessions() as s:
        forged = audit.verify(s, key=new_key)
    assert forged.first is not None and forged.first.event_id == 4
    assert forged.first.kind is BreakKind.SEAL


def test_events_from_before_sealing_are_covered_by_the_first_sealed_one(
        trail_app: Any) -> None:
    """A database upgraded to revision 0007 holds unsealed events; the first event
    recorded after the upgrade seals them in through the chain."""
    prev = audit.GENESIS
    at = utcnow() - timedelta(days=1)
    with state(trail_app).sessions.begin() as s:
        for i in range(3):
            digest = audit.digest(prev, at, "system", "intake.received", "intake", str(i),
                                   {}, "host:1")
            s.execute(insert(AuditEvent).values(
                at=at, actor="system", action="intake.received", entity_type="intake",
                entity_id=str(i), detail={}, source="host:1", prev_hash=prev, hash=digest))
            prev = digest
    legacy = verify(trail_app)
    assert legacy.ok and legacy.unsealed == 3 and legacy.sealed_from is None
    record_events(trail_app, 2)
    report = verify(trail_app)
    assert report.ok and report.unsealed == 3 and report.sealed_from == 4
    assert anchor(trail_app) is not None
    # Rewriting a legacy event (even with the chain recomputed) breaks the first seal.
    edit_event(trail_app, 1, detail={"rewritten": True})
    recompute_from(trail_app, 1)
    report = verify(trail_app)
    assert report.first is not None
    assert (report.first.event_id, report.first.kind) == (4, BreakKind.SEAL)


def test_a_check_with_another_key_says_so(trail_app: Any) -> None:
    """`intake audit verify` run with other settings than the app's does not call the
    trail forged: it says the key differs."""
    record_events(trail_app, 2)
    with state(trail_app).sessions() as s:
        report = audit.verify(s, key=audit.derive_key("not-the-apps-secret"))
    assert report.first is not None
    assert report.first.kind is BreakKind.ANCHOR_OTHER_KEY
    assert "INTAKE_SECRET_KEY" in report.first.message


@pytest.mark.integration  # runs the `intake` command as a process of its own
def test_cli_refuses_an_old_schema(tmp_path: Path) -> None:
    """The check never changes the database: an old schema is named, not upgraded."""
    from intake.storage.migrate import current_revision, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0006")
    out = cli(str(tmp_path), url, "audit", "verify")
    assert out.returncode == 1 and "intake db upgrade" in out.stderr
    assert current_revision(url) == "0006"

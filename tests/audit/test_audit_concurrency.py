"""Appends from many threads at once keep one valid chain (PostgreSQL: the advisory lock;
SQLite: BEGIN IMMEDIATE), and a check running meanwhile never mistakes a fresh append
for tampering."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select

from intake import audit, state
from intake.storage.models import AuditEvent
from support.audit import verify

THREADS = 6
EACH = 30


def test_concurrent_appends_keep_a_valid_chain(trail_app: Any) -> None:
    errors: list[BaseException] = []
    reports: list[audit.ChainReport] = []
    start = threading.Barrier(THREADS + 1)
    writing = threading.Event()
    writing.set()
    # Half-way, every writer waits for one check, so at least one check certainly sees a
    # partial trail (with two cores the scheduler might otherwise run it before or after).
    halfway = threading.Barrier(THREADS)
    mid_checked = threading.Event()

    def append(n: int) -> None:
        try:
            start.wait()
            with trail_app.app_context():
                for i in range(EACH):
                    if i == EACH // 2:
                        halfway.wait(timeout=60)
                        mid_checked.wait(timeout=60)
                    with state(trail_app).sessions.begin() as s:
                        audit.record(s, actor=f"worker-{n}", action="intake.read",
                                     entity_type="intake", entity_id=f"{n}-{i}",
                                     detail={"thread": n, "i": i})
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def check() -> None:
        try:
            start.wait()
            halfway.wait(timeout=60)
            reports.append(verify(trail_app))
            mid_checked.set()
            while writing.is_set():
                reports.append(verify(trail_app))
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=append, args=(n,)) for n in range(THREADS - 1)]
    checker = threading.Thread(target=check)
    for t in [*writers, checker]:
        t.start()
    start.wait()
    for t in writers:
        t.join(timeout=120)
    writing.clear()
    checker.join(timeout=120)
    assert not errors, errors
    final = verify(trail_app)
    assert final.ok, final.first and final.first.message
    assert final.checked == (THREADS - 1) * EACH
    with state(trail_app).sessions() as s:
        hashes = s.execute(select(AuditEvent.prev_hash, AuditEvent.hash)
                           .order_by(AuditEvent.id)).all()
        assert s.execute(select(func.count(func.distinct(AuditEvent.prev_hash)))
                         ).scalar_one() == len(hashes)  # no two events share a parent
    assert all(prev == hashes[i - 1].hash for i, (prev, _) in enumerate(hashes) if i)
    # Every check made while the threads appended saw a whole trail.
    total = (THREADS - 1) * EACH
    assert any(0 < r.checked < total for r in reports), "no check overlapped the appends"
    bad = [r.first.message for r in reports if r.first is not None]
    assert not bad, bad

"""The life of an intake: its states, the time of each, and the only ways to move it.

::

    received ─> triaged ─> delivered / delivery_failed ─> acknowledged
       │           ^            ^                           (every red flag seen;
       v           │            │                            reopened by a new one)
    triage_failed ─┴────────────┘
      (a re-run succeeds; or an earlier revision's result is delivered while a
       later revision's triage has failed)

    reviewed: a time (reviewed_at), not a status

Any intake may become ``triage_failed`` or ``triaged`` again (each revision is
triaged); see ``_FROM`` for the statuses each move starts from.

Every change of ``Intake.status`` goes through a function here, which checks that
the intake may make that move (:class:`IllegalTransition` otherwise: a defect, never a
patient's input), sets the time of the new state and clears or sets the reason. The
pipeline and the review actions call these; nothing else assigns ``status``.

``Intake.status`` is stored as its text and read back as an :class:`IntakeStatus`: a
status this version does not know (a database written by a newer version, then rolled
back without its migrations' downgrade) fails the read loudly rather than being shown as
something else.

Deliveries do not move an acknowledged intake: a practitioner who has seen every red
flag has seen it, whatever the record system answered since. Reviewing is not a status
either: it is a time (``reviewed_at``) that the worklist's default view filters on, so
the status keeps saying where the intake stands with the triage and the record system.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from intake.errors import IntakeError

if TYPE_CHECKING:
    from intake.storage.models import Intake


class IntakeStatus(enum.StrEnum):
    RECEIVED = "received"
    TRIAGED = "triaged"
    TRIAGE_FAILED = "triage_failed"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    ACKNOWLEDGED = "acknowledged"


# The column holding the time each status was (last) entered: the one status -> time map.
STATUS_TIME: Mapping[IntakeStatus, str] = {
    IntakeStatus.RECEIVED: "received_at",
    IntakeStatus.TRIAGED: "triaged_at",
    IntakeStatus.TRIAGE_FAILED: "triage_failed_at",
    IntakeStatus.DELIVERED: "delivered_at",
    IntakeStatus.DELIVERY_FAILED: "delivery_failed_at",
    IntakeStatus.ACKNOWLEDGED: "acknowledged_at",
}

_S = IntakeStatus
# Which statuses each move may start from (every status not listed is refused).
_FROM: Mapping[str, frozenset[IntakeStatus]] = {
    # A revision's result: the first one, or a re-run after a failed triage. A re-triage
    # of a later revision (examination findings) keeps a delivered or acknowledged
    # status (see :func:`triaged`).
    "triaged": frozenset(_S),
    "triage_failed": frozenset(_S),
    "delivered": frozenset({_S.TRIAGED, _S.DELIVERED, _S.DELIVERY_FAILED, _S.ACKNOWLEDGED,
                            _S.TRIAGE_FAILED}),
    "delivery_failed": frozenset({_S.TRIAGED, _S.DELIVERED, _S.DELIVERY_FAILED,
                                  _S.ACKNOWLEDGED, _S.TRIAGE_FAILED}),
    "acknowledged": frozenset({_S.TRIAGED, _S.DELIVERED, _S.DELIVERY_FAILED,
                               _S.ACKNOWLEDGED}),
}


class IllegalTransition(IntakeError):
    """An intake was asked to make a move its status does not allow (a defect)."""

    code: ClassVar[str] = "illegal_transition"

    def __init__(self, move: str, status: str) -> None:
        super().__init__(f"an intake in status {status!r} cannot become {move!r}",
                         move=move, status=status)
        self.move, self.status = move, status


def _check(intake: Intake, move: str) -> IntakeStatus:
    current = IntakeStatus(intake.status)
    if current not in _FROM[move]:
        raise IllegalTransition(move, current)
    return current


def received(intake: Intake, now: datetime) -> None:
    """A new intake: stored, its triage owed."""
    intake.status, intake.received_at = IntakeStatus.RECEIVED, now


def triaged(intake: Intake, now: datetime) -> None:
    """A revision's triage result is stored. The status becomes ``triaged`` unless the
    intake is already further along (a later revision's result, after examination
    findings, does not undo a delivery or an acknowledgement)."""
    current = _check(intake, "triaged")
    if current in (_S.RECEIVED, _S.TRIAGE_FAILED):
        intake.status, intake.status_reason = _S.TRIAGED, None
    intake.triaged_at = now


def triage_failed(intake: Intake, now: datetime, reason: str) -> None:
    """The rules could not be run on the stored answers (kept visible on the worklist
    and raised at the desk, never dropped)."""
    _check(intake, "triage_failed")
    intake.status, intake.triage_failed_at = _S.TRIAGE_FAILED, now
    intake.status_reason = reason


def delivered(intake: Intake, now: datetime) -> None:
    """The record system has the intake's current state."""
    current = _check(intake, "delivered")
    if current != _S.ACKNOWLEDGED:
        intake.status = _S.DELIVERED
    intake.delivered_at, intake.status_reason = now, None


def delivery_failed(intake: Intake, now: datetime, reason: str) -> None:
    """The record system refused the intake, or every attempt was used up."""
    current = _check(intake, "delivery_failed")
    if current != _S.ACKNOWLEDGED:
        intake.status = _S.DELIVERY_FAILED
    intake.delivery_failed_at, intake.status_reason = now, reason[:2000]


def acknowledged(intake: Intake, now: datetime) -> None:
    """A practitioner has seen every red flag of the current result (the first time
    counts)."""
    _check(intake, "acknowledged")
    intake.status = _S.ACKNOWLEDGED
    intake.acknowledged_at = intake.acknowledged_at or now


def reopened(intake: Intake) -> None:
    """Examination findings fired a red flag nobody has acknowledged: the intake is open
    again (back to where it stands with the record system; not reviewed)."""
    if intake.status == _S.ACKNOWLEDGED:
        intake.status = _S.DELIVERED if intake.delivered_at else _S.TRIAGED
    intake.acknowledged_at = None
    intake.reviewed_at = None


def reviewed(intake: Intake, now: datetime) -> None:
    """A practitioner marked the case reviewed (it leaves the default worklist)."""
    intake.reviewed_at = now

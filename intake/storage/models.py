"""The database schema: intakes, their pending jobs, triage results, delivery
attempts and the audit trail.

The database is the system of record; Redis only carries ids. A job row is the
durable promise that work is still owed on an intake, so the sweeper can find
anything the broker lost.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from intake.clinical.result import TriageResult
from intake.lifecycle import IntakeStatus as IntakeStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class StatusType(TypeDecorator[IntakeStatus]):
    """``Intake.status``: stored as its text, read back as an :class:`IntakeStatus`."""

    impl = String(20)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else IntakeStatus(value).value

    def process_result_value(self, value: str | None,
                             dialect: Dialect) -> IntakeStatus | None:
        return None if value is None else IntakeStatus(value)


class JobKind(enum.StrEnum):
    TRIAGE = "triage"
    DELIVER = "deliver"  # a triage result to send (revision = the triage revision)
    WRITEBACK = "writeback"  # a practitioner's change to send (revision = ReviewAction.seq)


# Both kinds of delivery job are done by one delivery of the intake's current state.
DELIVERY_KINDS = (JobKind.DELIVER, JobKind.WRITEBACK)


class JobState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    # A delivery job whose content a newer delivery of the same intake carries.
    SUPERSEDED = "superseded"


class Role(enum.StrEnum):
    PRACTITIONER = "practitioner"
    FRONT_DESK = "front_desk"
    ADMIN = "admin"


class DeviceKind(enum.StrEnum):
    BOARD = "board"  # the front desk's always-on alert display
    TABLET = "tablet"  # a patient tablet (/kiosk)


class AlertLevel(enum.StrEnum):
    EMERGENCY = "emergency"  # alarm until someone answers; escalates
    SAME_DAY = "same_day"  # the patient was told a staff member will speak with them


class AlertState(enum.StrEnum):
    OPEN = "open"  # nobody has answered it yet
    IN_PROGRESS = "in_progress"  # 対応中: someone is on their way / with the patient
    DONE = "done"  # 確認済: handled


class ReviewKind(enum.StrEnum):
    ACKNOWLEDGE_FLAG = "acknowledge_flag"
    CHANGE_DEPARTMENT = "change_department"
    EXAM_FINDINGS = "exam_findings"
    REVIEWED = "reviewed"


class Intake(Base):
    __tablename__ = "intakes"
    __table_args__ = (
        # The worklist's default view (not reviewed yet), in arrival order, with what
        # its order and department filter read (found from indexes alone): a partial
        # index, so its size follows the open queue rather than the whole history.
        Index("ix_intakes_not_reviewed", "received_at", "id", "department_override",
              postgresql_where=text("reviewed_at IS NULL"),
              sqlite_where=text("reviewed_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Business identifier: printed on the desk screen and used as the FHIR
    # identifier value of every resource sent for this intake.
    business_id: Mapped[str] = mapped_column(String(40), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # SHA-256 of the submitted body, so a reused key with another body is refused.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20))
    questionnaire_url: Mapped[str] = mapped_column(String(200))
    questionnaire_version: Mapped[str] = mapped_column(String(20))
    questionnaire_response: Mapped[dict[str, Any]] = mapped_column(JSONType)
    patient_record_number: Mapped[str | None] = mapped_column(String(64))
    patient_demographics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Increases when staff add examination findings; each revision is triaged
    # and delivered once.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # Moved only by the functions of ``intake.lifecycle``.
    status: Mapped[IntakeStatus] = mapped_column(StatusType(), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    # Indexed: the desk and the worklist list recent intakes by it.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    triaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    triage_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivery_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The department a practitioner chose instead of the triage's (None: the triage's).
    department_override: Mapped[str | None] = mapped_column(String(40))
    # Number of review actions so far (ReviewAction.seq of the newest).
    review_seq: Mapped[int] = mapped_column(Integer, default=0)
    # The delivery lease: held by the one delivery of this intake running now, whichever
    # job it serves (see ``intake.pipeline.claim_delivery``); the sweeper leaves the
    # intake's delivery jobs alone while it is held.
    delivery_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The enrolled tablet the patient answered on (None: the API, FHIR, or a tablet
    # session begun before tablets were enrolled).
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    triage_records: Mapped[list[TriageRecord]] = relationship(
        back_populates="intake", order_by="TriageRecord.revision"
    )
    jobs: Mapped[list[Job]] = relationship(back_populates="intake", order_by="Job.id")
    delivery_attempts: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="intake", order_by="DeliveryAttempt.id"
    )


class Job(Base):
    """Work still owed on an intake: one row per (intake, kind, revision)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("intake_id", "kind", "revision", name="uq_jobs_intake_kind_revision"),
        Index("ix_jobs_state_kind", "state", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    revision: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10), default=JobState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Last time a message for this job was handed to the broker (None: never).
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A scheduled retry is not stuck before this time.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # True after a timeout or dropped connection: the next attempt searches first.
    ambiguous: Mapped[bool] = mapped_column(Boolean, default=False)

    intake: Mapped[Intake] = relationship(back_populates="jobs")


class TriageRecord(Base):
    """A stored triage result: one per (intake, revision), never changed once written.

    ``result`` holds the JSON form of :class:`intake.clinical.TriageResult` (the
    ``intake triage`` contract); read it through :attr:`triage`, typed. The other
    columns copy what the worklist filters and sorts on."""

    __tablename__ = "triage_results"
    __table_args__ = (
        UniqueConstraint("intake_id", "revision", name="uq_triage_results_intake_revision"),
        # The worklist reads each intake's newest result from the index alone (urgency
        # for the order, department and flags for the filters and the row).
        Index("ix_triage_results_worklist", "intake_id", "revision", "urgency",
              "department", "flag_codes"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    ruleset: Mapped[str] = mapped_column(String(60))
    urgency: Mapped[str] = mapped_column(String(20), index=True)
    department: Mapped[str] = mapped_column(String(40))
    red_flag: Mapped[bool] = mapped_column(Boolean)
    # ",CODE1,CODE2," (fired flag codes), so the worklist can filter by flag in SQL.
    flag_codes: Mapped[str] = mapped_column(String(400), default=",")
    result: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    intake: Mapped[Intake] = relationship(back_populates="triage_records")

    @property
    def triage(self) -> TriageResult:
        """The stored result, typed (read once per loaded row)."""
        cached: TriageResult | None = self.__dict__.get("_triage")
        if cached is None:
            cached = TriageResult.from_dict(self.result)
            self.__dict__["_triage"] = cached
        return cached


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    intake_id: Mapped[str] = mapped_column(
        ForeignKey("intakes.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    attempt_no: Mapped[int] = mapped_column(Integer)
    adapter: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int | None] = mapped_column(Integer)
    # What the record system answered (transaction-response or OperationOutcome).
    response: Mapped[Any] = mapped_column(JSONType, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())

    intake: Mapped[Intake] = relationship(back_populates="delivery_attempts")


class AuditEvent(Base):
    """Who did what to which record, chained by hash so tampering is detectable.

    ``detail`` never holds answers or demographics: only ids, states and codes.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    entity_type: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Where the action came from: the client address of a web request, or the host
    # and process of a worker or command ("" on events recorded before it existed).
    source: Mapped[str] = mapped_column(String(100), default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # HMAC of (id, hash) under a key derived from the secret key, and which key: a chain
    # recomputed by someone without the key fails here (NULL on events recorded before
    # sealing began; see intake.audit).
    key_id: Mapped[str | None] = mapped_column(String(16))
    seal: Mapped[str | None] = mapped_column(String(64))


class AuditAnchor(Base):
    """One row (id 1): the newest audit event as its writer left it, sealed with the key.

    The hash chain cannot show that its newest events were deleted; this row can, because
    it is rewritten in the same transaction as every append and cannot be re-sealed
    without the key. ``incident`` keeps, sealed, the first disagreement a writer found
    between this row and the trail, so a later append does not hide a truncation.
    """

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The first event sealed in this database; earlier ones predate sealing.
    sealed_from: Mapped[int] = mapped_column(Integer)
    incident: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    key_id: Mapped[str] = mapped_column(String(16))
    seal: Mapped[str] = mapped_column(String(64))


class KioskDraft(Base):
    """A tablet session in progress: the answers given so far, held on the server only.

    The tablet keeps nothing but a signed cookie with a random token; the row is keyed
    by the token's SHA-256, so a copy of this table cannot be replayed as a cookie.
    Deleted when the patient submits, when the session is reset, and when it expires
    (the expiry sweeper first triages answers that meet a RED condition, so an
    emergency answer is never wiped silently).
    """

    __tablename__ = "kiosk_drafts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lang: Mapped[str] = mapped_column(String(2))
    patient_record_number: Mapped[str | None] = mapped_column(String(64))
    patient_demographics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Simple answer format (question id -> value), validated on every save.
    answers: Mapped[dict[str, Any]] = mapped_column(JSONType)
    step: Mapped[int] = mapped_column(Integer, default=0)
    # The enrolled tablet this session runs on.
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    # Bumped on every save: the sweeper ends a draft only if nobody touched it since
    # it was found idle (compare-and-delete on this counter).
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow,
                                                       index=True)


class StaffPinThrottle(Base):
    """Wrong staff PINs per client address, so the PIN cannot be guessed by brute force."""

    __tablename__ = "staff_pin_throttle"

    # SHA-256 of the client address: the limiter needs equality only.
    client_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CdsCard(Base):
    """A CDS Hooks card the service issued, kept so feedback can be tied to it.

    The CDS service stores no intake (it is decision support on the client's data);
    this row holds only what the card said in codes (rule set, urgency, flags) and
    the client's hook instance, never answers or patient identifiers.
    """

    __tablename__ = "cds_cards"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64))
    hook_instance: Mapped[str] = mapped_column(String(100))
    # None when the questionnaire response could not be evaluated (the card says so).
    ruleset: Mapped[str | None] = mapped_column(String(60))
    urgency: Mapped[str | None] = mapped_column(String(20))
    indicator: Mapped[str] = mapped_column(String(10))
    flag_codes: Mapped[list[str]] = mapped_column(JSONType)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    feedback: Mapped[list[CdsFeedback]] = relationship(back_populates="card",
                                                       order_by="CdsFeedback.id")


class CdsFeedback(Base):
    """What a clinician did with a card: accepted, or overridden with an optional reason.

    A client may report the same interaction more than once; (card, outcome, time)
    is unique so a repeat is recognised and stored once.
    """

    __tablename__ = "cds_feedback"
    __table_args__ = (
        UniqueConstraint("card_uuid", "outcome", "outcome_at",
                         name="uq_cds_feedback_card_outcome_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    card_uuid: Mapped[str] = mapped_column(ForeignKey("cds_cards.uuid", ondelete="CASCADE"),
                                           index=True)
    outcome: Mapped[str] = mapped_column(String(12))
    override_reason_system: Mapped[str | None] = mapped_column(String(300))
    override_reason_code: Mapped[str | None] = mapped_column(String(100))
    # Free text typed by the clinician; kept in the database only (never logged or audited).
    user_comment: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Who reported it: the client's JWT issuer, or "shared-token" for the shared bearer token.
    client: Mapped[str] = mapped_column(String(300))

    card: Mapped[CdsCard] = relationship(back_populates="feedback")


class CdsJwtSeen(Base):
    """CDS client JWTs already accepted, so a captured token cannot be replayed.

    Keyed by SHA-256 of issuer and jti (no patient data); kept until the token's
    expiry, after which its ``exp`` check refuses it anyway.
    """

    __tablename__ = "cds_jwt_seen"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class User(Base):
    """A member of staff who signs in: a practitioner, the front desk or an admin."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The sign-in name, stored as typed after NFKC normalisation and lower-casing.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    # argon2id (argon2-cffi's encoded form, parameters included).
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_signins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UserSession(Base):
    """A signed-in browser. The cookie holds a random token; the row is keyed by its
    SHA-256, so this table cannot be replayed as cookies. Ended (row deleted) at sign-out,
    after the idle time-out, at the absolute lifetime, and when the user is disabled or
    their password is reset."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    address: Mapped[str] = mapped_column(String(100), default="")

    user: Mapped[User] = relationship()


class ReviewAction(Base):
    """One thing a practitioner did to an intake, in order (``seq`` per intake).

    Each is written back to the record system: acknowledging a flag, changing the
    department (with the reason), examination findings (which re-triage: a new intake
    revision) and marking the intake reviewed. ``reason`` is staff free text: kept
    here and sent to the record system, never logged or copied into the audit trail.
    """

    __tablename__ = "review_actions"
    __table_args__ = (
        UniqueConstraint("intake_id", "seq", name="uq_review_actions_intake_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id", ondelete="CASCADE"),
                                           index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    # The triage revision the practitioner was looking at (for exam findings: the
    # revision they produce).
    revision: Mapped[int] = mapped_column(Integer)
    flag_code: Mapped[str | None] = mapped_column(String(40))
    department: Mapped[str | None] = mapped_column(String(40))
    previous_department: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    # Examination items entered (question id -> bool).
    findings: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship()


class Device(Base):
    """An enrolled device: a front-desk alert board or a patient tablet.

    An admin adds it by name and gets a one-time code; typing the code on the device
    gives that browser a random token in a cookie. The row keeps only SHA-256 hashes of
    the code and the token. Revoking clears the token, so the device gets nothing more
    (its open live streams are closed at once); a new code enrolls it again.
    """

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Shown on alerts ("受付1", "タブレット2"); NFKC-normalised, unique.
    name: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    # Written at most once a minute (a board's live stream, a tablet's requests).
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Alert(Base):
    """A patient the front desk must act on: raised with a triage result that is an
    emergency (alarm until answered, escalation) or same day (the tablet told the
    patient that a staff member will speak with them).

    One per (intake, revision, level) at most. Staff answer it as 対応中 (in progress) and
    確認済 (done) from any board, the desk or the worklist; every board shows the same
    state. ``reasons`` are plain reason classes (",chest,leg_circulation,"), never a
    flag or a diagnosis. ``*_by`` is a staff user's name; ``*_via`` where it was done
    ("board:<name>", "desk", "review", "system").
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("intake_id", "revision", "level", name="uq_alerts_intake_revision"),
        Index("ix_alerts_state_raised", "state", "raised_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id", ondelete="CASCADE"),
                                           index=True)
    revision: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(10))
    reasons: Mapped[str] = mapped_column(String(200), default=",")
    state: Mapped[str] = mapped_column(String(12), default=AlertState.OPEN)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    in_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    in_progress_by: Mapped[str | None] = mapped_column(String(64))
    in_progress_via: Mapped[str | None] = mapped_column(String(60))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    done_by: Mapped[str | None] = mapped_column(String(64))
    done_via: Mapped[str | None] = mapped_column(String(60))

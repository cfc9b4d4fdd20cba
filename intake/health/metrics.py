"""`/metrics` in the Prometheus text format: counts and ages only, never patient data.

What an operator needs to see that nothing is being lost: intakes by state,
jobs still owed and how long the oldest has waited, delivery attempts by
outcome, and results by urgency.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.storage.models import DeliveryAttempt, Intake, Job, JobState, TriageRecord, utcnow


def _line(name: str, value: float, **labels: str) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def render(session: Session, now: datetime | None = None) -> str:
    now = now or utcnow()
    out: list[str] = []

    out += ["# HELP intake_intakes Intakes by current status.", "# TYPE intake_intakes gauge"]
    for status, count in session.execute(
            select(Intake.status, func.count()).group_by(Intake.status)).all():
        out.append(_line("intake_intakes", count, status=status))

    out += ["# HELP intake_jobs_pending Jobs still owed (triage or delivery).",
            "# TYPE intake_jobs_pending gauge"]
    pending = session.execute(
        select(Job.kind, func.count(), func.min(Job.created_at))
        .where(Job.state == JobState.PENDING).group_by(Job.kind)).all()
    oldest: dict[str, float] = {}
    for kind, count, first in pending:
        out.append(_line("intake_jobs_pending", count, kind=kind))
        if first is not None:
            first = first if first.tzinfo else first.replace(tzinfo=now.tzinfo)
            oldest[kind] = max(0.0, (now - first).total_seconds())
    out += ["# HELP intake_jobs_oldest_pending_seconds Age of the oldest job still owed.",
            "# TYPE intake_jobs_oldest_pending_seconds gauge"]
    for kind in ("triage", "deliver"):
        out.append(_line("intake_jobs_oldest_pending_seconds", oldest.get(kind, 0.0),
                         kind=kind))

    out += ["# HELP intake_jobs_failed Jobs that ended in failure (a person must look).",
            "# TYPE intake_jobs_failed gauge"]
    for kind, count in session.execute(
            select(Job.kind, func.count()).where(Job.state == JobState.FAILED)
            .group_by(Job.kind)).all():
        out.append(_line("intake_jobs_failed", count, kind=kind))

    out += ["# HELP intake_delivery_attempts_total Delivery attempts by outcome.",
            "# TYPE intake_delivery_attempts_total counter"]
    for outcome, count in session.execute(
            select(DeliveryAttempt.outcome, func.count())
            .group_by(DeliveryAttempt.outcome)).all():
        out.append(_line("intake_delivery_attempts_total", count, outcome=outcome))

    out += ["# HELP intake_triage_results_total Triage results by urgency.",
            "# TYPE intake_triage_results_total counter"]
    for urgency, count in session.execute(
            select(TriageRecord.urgency, func.count()).group_by(TriageRecord.urgency)).all():
        out.append(_line("intake_triage_results_total", count, urgency=urgency))
    return "\n".join(out) + "\n"

"""Worklist indexes, so the order of a worklist page is found from indexes alone:

* intakes not reviewed yet, by arrival, with their ids and department overrides (partial:
  the practitioners' default view reads the open queue only, however long the history);
* each intake's triage results with the columns the worklist reads (the newest result's
  urgency, department and flags).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_NOT_REVIEWED = sa.text("reviewed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("intakes", schema=None) as batch_op:
        batch_op.create_index("ix_intakes_not_reviewed",
                              ["received_at", "id", "department_override"], unique=False,
                              postgresql_where=_NOT_REVIEWED, sqlite_where=_NOT_REVIEWED)
    with op.batch_alter_table("triage_results", schema=None) as batch_op:
        batch_op.create_index("ix_triage_results_worklist",
                              ["intake_id", "revision", "urgency", "department",
                               "flag_codes"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("triage_results", schema=None) as batch_op:
        batch_op.drop_index("ix_triage_results_worklist")
    with op.batch_alter_table("intakes", schema=None) as batch_op:
        batch_op.drop_index("ix_intakes_not_reviewed")

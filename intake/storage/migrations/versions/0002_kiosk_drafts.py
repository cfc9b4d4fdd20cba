"""kiosk drafts and the staff PIN throttle

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "kiosk_drafts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("lang", sa.String(length=2), nullable=False),
        sa.Column("patient_record_number", sa.String(length=64), nullable=True),
        sa.Column("patient_demographics", _JSON, nullable=True),
        sa.Column("answers", _JSON, nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kiosk_drafts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kiosk_drafts_last_activity_at"),
                              ["last_activity_at"], unique=False)

    op.create_table(
        "staff_pin_throttle",
        sa.Column("client_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("client_key"),
    )


def downgrade() -> None:
    op.drop_table("staff_pin_throttle")
    with op.batch_alter_table("kiosk_drafts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kiosk_drafts_last_activity_at"))
    op.drop_table("kiosk_drafts")

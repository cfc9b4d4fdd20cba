"""Alerts that cannot go silent: enrolled devices (front-desk boards and patient
tablets), the alerts staff answer from any board, and the tablet each intake came from.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("intake_id", sa.String(length=36), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("reasons", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("in_progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("in_progress_by", sa.String(length=64), nullable=True),
        sa.Column("in_progress_via", sa.String(length=60), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=64), nullable=True),
        sa.Column("done_via", sa.String(length=60), nullable=True),
        sa.ForeignKeyConstraint(["intake_id"], ["intakes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("intake_id", "revision", "level",
                            name="uq_alerts_intake_revision"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_intake_id", ["intake_id"], unique=False)
        batch_op.create_index("ix_alerts_state_raised", ["state", "raised_at"], unique=False)
        batch_op.create_index("ix_alerts_done_at", ["done_at"], unique=False)
    with op.batch_alter_table("intakes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_intakes_device_id", "devices", ["device_id"], ["id"])
    with op.batch_alter_table("kiosk_drafts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_kiosk_drafts_device_id", "devices", ["device_id"],
                                    ["id"])


def downgrade() -> None:
    with op.batch_alter_table("kiosk_drafts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_kiosk_drafts_device_id", type_="foreignkey")
        batch_op.drop_column("device_id")
    with op.batch_alter_table("intakes", schema=None) as batch_op:
        batch_op.drop_constraint("fk_intakes_device_id", type_="foreignkey")
        batch_op.drop_column("device_id")
    op.drop_table("alerts")
    op.drop_table("devices")

"""Sealed audit trail: a keyed seal on every audit event and the one-row anchor that
records the newest event, so a deleted newest event or a recomputed chain is detected.

Events recorded before this revision keep no seal; the first event recorded after it
starts sealing (see intake.audit).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("seal", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed_from", sa.Integer(), nullable=False),
        sa.Column("incident", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(),
                                                     "postgresql"), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("seal", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("audit_anchor")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("seal")
        batch_op.drop_column("key_id")

"""Practitioner review: users and their sessions, review actions, write-back leases,
flag codes on triage results for the worklist filter, and the source of audit events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_signins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_user_sessions_user_id", ["user_id"], unique=False)
        batch_op.create_index("ix_user_sessions_expires_at", ["expires_at"], unique=False)
    op.create_table(
        "review_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("intake_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("flag_code", sa.String(length=40), nullable=True),
        sa.Column("department", sa.String(length=40), nullable=True),
        sa.Column("previous_department", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("findings", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(),
                                                     "postgresql"), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["intake_id"], ["intakes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("intake_id", "seq", name="uq_review_actions_intake_seq"),
    )
    with op.batch_alter_table("review_actions", schema=None) as batch_op:
        batch_op.create_index("ix_review_actions_intake_id", ["intake_id"], unique=False)

    with op.batch_alter_table("intakes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("department_override", sa.String(length=40),
                                      nullable=True))
        batch_op.add_column(sa.Column("review_seq", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("delivery_lease_until", sa.DateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("triage_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flag_codes", sa.String(length=400), nullable=False,
                                      server_default=","))
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=100), nullable=False,
                                      server_default=""))

    # Flag codes of the results stored before this revision.
    bind = op.get_bind()
    results = sa.table("triage_results", sa.column("id", sa.Integer),
                       sa.column("result", sa.JSON), sa.column("flag_codes", sa.String))
    for row_id, result in bind.execute(sa.select(results.c.id, results.c.result)).all():
        data = json.loads(result) if isinstance(result, str) else result
        codes = "," + "".join(f"{f['code']}," for f in (data or {}).get("flags", []))
        bind.execute(results.update().where(results.c.id == row_id)
                     .values(flag_codes=codes[:400]))


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("triage_results", schema=None) as batch_op:
        batch_op.drop_column("flag_codes")
    with op.batch_alter_table("intakes", schema=None) as batch_op:
        batch_op.drop_column("delivery_lease_until")
        batch_op.drop_column("review_seq")
        batch_op.drop_column("department_override")
        batch_op.drop_column("reviewed_at")
    with op.batch_alter_table("review_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_review_actions_intake_id")
    op.drop_table("review_actions")
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_user_sessions_expires_at")
        batch_op.drop_index("ix_user_sessions_user_id")
    op.drop_table("user_sessions")
    op.drop_table("users")

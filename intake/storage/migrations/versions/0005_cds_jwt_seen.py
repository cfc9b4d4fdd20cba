"""CDS client JWTs already accepted (replay protection by jti).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cds_jwt_seen",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("cds_jwt_seen", schema=None) as batch_op:
        batch_op.create_index("ix_cds_jwt_seen_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cds_jwt_seen", schema=None) as batch_op:
        batch_op.drop_index("ix_cds_jwt_seen_expires_at")
    op.drop_table("cds_jwt_seen")

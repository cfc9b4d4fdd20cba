"""One delivery lease: ``intakes.delivery_lease_until`` alone.

Every delivery takes the lease on the intake row (it sends the intake's whole current
state, whichever job it serves); the copy on the job row (``jobs.lease_until``) only
told the sweeper what the intake's lease already says.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("lease_until")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True),
                                      nullable=True))

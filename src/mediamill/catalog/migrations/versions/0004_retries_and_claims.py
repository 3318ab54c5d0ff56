"""Transient failures are retried (``results.error_class``, ``attempts``, ``retry_at``), and
a running job claims the items it has taken (``claims``) so that another run of the same
processor on the same library passes them over.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mediamill.catalog.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("results", sa.Column("error_class", sa.String(length=16), nullable=True))
    op.add_column(
        "results", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "results",
        sa.Column("retry_at", mediamill.catalog.models.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "claims",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("processor", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_id", "processor"),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index("ix_claims_job", ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index("ix_claims_job")
    op.drop_table("claims")
    with op.batch_alter_table("results") as batch:  # SQLite before 3.35 cannot drop
        batch.drop_column("retry_at")
        batch.drop_column("attempts")
        batch.drop_column("error_class")

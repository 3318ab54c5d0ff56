"""The history of processors' changes to their items' files (``item_changes``): what a
comic retag or rename changed (tags and names before and after), so that it can be undone.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column(
            "item_id", sa.Integer(), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("processor", sa.String(length=64), nullable=False),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_item_changes_job", "item_changes", ["job_id", "id"])
    op.create_index("ix_item_changes_item", "item_changes", ["item_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_item_changes_item", table_name="item_changes")
    op.drop_index("ix_item_changes_job", table_name="item_changes")
    op.drop_table("item_changes")

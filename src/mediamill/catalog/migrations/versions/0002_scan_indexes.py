"""Indexes for streaming scans: items by id within a library, and (PostgreSQL) by path in
code point order, which is the order the folder walk produces.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_library_present_id", "items", ["library_id", "present", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_items_library_path_c", "items", ["library_id", sa.text('path COLLATE "C"')]
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_items_library_path_c", table_name="items")
    op.drop_index("ix_items_library_present_id", table_name="items")

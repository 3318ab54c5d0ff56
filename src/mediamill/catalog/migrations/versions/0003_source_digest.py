"""A source library's digest of what its provider last answered (``libraries.source_digest``):
a re-read that gets the very same answers skips parsing and comparing every entry.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("libraries", sa.Column("source_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("libraries") as batch:  # SQLite before 3.35 cannot drop
        batch.drop_column("source_digest")

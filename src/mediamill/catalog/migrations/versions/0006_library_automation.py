"""Per-library automation: the processors a watcher runs on new and changed files, how the
library is watched, its schedule (``libraries.automation``); what its watcher is doing
(``libraries.watch_state``); and when its schedule last ran (``libraries.scheduled_at``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mediamill.catalog.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("libraries", sa.Column("automation", sa.JSON(), nullable=True))
    op.add_column("libraries", sa.Column("watch_state", sa.JSON(), nullable=True))
    op.add_column(
        "libraries",
        sa.Column("scheduled_at", UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("libraries") as batch:  # SQLite before 3.35 cannot drop
        batch.drop_column("scheduled_at")
        batch.drop_column("watch_state")
        batch.drop_column("automation")

"""What statistics count of each result, kept beside it (``results.facets``, compact JSON of
container, bit-rate band, streams, tempo band and key; ``results.media_seconds``) and an
index statistics read alone, so ``mediamill stats`` never parses results' JSON. Existing
results get theirs here, computed as new ones are (``mediamill.facets``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mediamill.facets import facets_of

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH = 2000

results = sa.table(
    "results",
    sa.column("id", sa.Integer()),
    sa.column("processor", sa.String()),
    sa.column("status", sa.String()),
    sa.column("data", sa.JSON()),
    sa.column("facets", sa.Text()),
    sa.column("media_seconds", sa.Float()),
)


def upgrade() -> None:
    op.add_column("results", sa.Column("facets", sa.Text(), nullable=True))
    op.add_column("results", sa.Column("media_seconds", sa.Float(), nullable=True))
    _backfill(op.get_bind())
    op.create_index(
        "ix_results_facets",
        "results",
        ["processor", "status", "facets", "media_seconds", "item_id"],
    )


def _backfill(conn: sa.Connection) -> None:
    """Every successful result of a processor statistics count, in batches by id."""
    last = 0
    while True:
        rows = conn.execute(
            sa.select(results.c.id, results.c.processor, results.c.data)
            .where(
                results.c.id > last,
                results.c.status == "ok",
                results.c.processor.in_(["probe", "audio"]),
            )
            .order_by(results.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        values = []
        for row_id, processor, data in rows:
            facets, seconds = facets_of(processor, data)
            values.append({"row_id": row_id, "facets": facets, "seconds": seconds})
        conn.execute(
            results.update()
            .where(results.c.id == sa.bindparam("row_id"))
            .values(facets=sa.bindparam("facets"), media_seconds=sa.bindparam("seconds")),
            values,
        )
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_results_facets", table_name="results")
    with op.batch_alter_table("results") as batch:  # SQLite before 3.35 cannot drop
        batch.drop_column("media_seconds")
        batch.drop_column("facets")

"""Alembic environment: runs migrations on the connection mediamill hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from mediamill.catalog.models import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:  # the alembic command line, e.g. `alembic revision --autogenerate`
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()

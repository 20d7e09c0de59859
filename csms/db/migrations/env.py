"""Alembic environment: always handed a live connection by `csms.db.migrate`."""

from __future__ import annotations

from alembic import context

from csms.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `volthaus db upgrade` (it supplies the connection)")

context.configure(
    connection=connection,
    target_metadata=metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: runs on the connection the registry hands over (see store.migrate)."""

from alembic import context

from beamops.registry.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the registry always passes its connection
    raise RuntimeError("run migrations through beamops.registry.store.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""PostgreSQL: every committed change to the registry's tables sends NOTIFY
beamops_registry_changed, so each registry process's read cache (read_cache.py) learns of changes
made by any writer. SQLite needs nothing (the cache watches PRAGMA data_version).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 11:00:00.000000
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

CHANNEL = 'beamops_registry_changed'
TABLES = ('models', 'model_types', 'artifacts', 'parameters_versions', 'parameters_datasets', 'aliases',
          'iov_tags', 'iov_entries', 'global_tags', 'model_permissions')


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(f"""
        CREATE FUNCTION beamops_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$""")
    for table in TABLES:
        op.execute(f"CREATE TRIGGER {table}_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                   f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION beamops_notify_change()")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}")
    op.execute("DROP FUNCTION IF EXISTS beamops_notify_change()")

"""Initial schema: models, model types, artifacts, parameters versions, aliases, IOVs, audit.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 08:12:20.580678
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_us', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(), nullable=False),
    sa.Column('action', sa.String(), nullable=False),
    sa.Column('model', sa.String(), nullable=False),
    sa.Column('resource', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('request_id', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_event_us'), ['event_us'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_model'), ['model'], unique=False)

    op.create_table('global_tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('description', sa.String(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('create_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('global_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_global_tags_name'), ['name'], unique=True)

    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(), nullable=False),
    sa.Column('owner', sa.String(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('create_us', sa.BigInteger(), nullable=False),
    sa.Column('update_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_models_name'), ['name'], unique=True)

    op.create_table('alias_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=100), nullable=False),
    sa.Column('from_version', sa.String(), nullable=False),
    sa.Column('to_version', sa.String(), nullable=False),
    sa.Column('actor', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('event_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.create_index('ix_alias_events_model_alias', ['model_id', 'alias'], unique=False)

    op.create_table('artifacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('artifact_id', sa.String(length=64), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(), nullable=False),
    sa.Column('filename', sa.String(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('signature', sa.JSON(), nullable=True),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('create_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifacts_artifact_id'), ['artifact_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_artifacts_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_artifacts_sha256'), ['sha256'], unique=False)

    op.create_table('iov_tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('description', sa.String(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('create_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('iov_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_iov_tags_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_iov_tags_name'), ['name'], unique=True)

    op.create_table('model_types',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('major', sa.Integer(), nullable=False),
    sa.Column('minor', sa.Integer(), nullable=False),
    sa.Column('patch', sa.Integer(), nullable=False),
    sa.Column('signature', sa.JSON(), nullable=False),
    sa.Column('framework', sa.String(), nullable=False),
    sa.Column('code', sa.JSON(), nullable=False),
    sa.Column('description', sa.String(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('create_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'major', 'minor', 'patch', name='uq_model_type_version')
    )
    with op.batch_alter_table('model_types', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_types_model_id'), ['model_id'], unique=False)

    op.create_table('parameters_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('major', sa.Integer(), nullable=False),
    sa.Column('minor', sa.Integer(), nullable=False),
    sa.Column('model_type_id', sa.Integer(), nullable=False),
    sa.Column('primary_artifact_id', sa.Integer(), nullable=True),
    sa.Column('derived_artifact_ids', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('lineage', sa.JSON(), nullable=False),
    sa.Column('description', sa.String(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('reference_distributions', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('create_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['model_type_id'], ['model_types.id'], ),
    sa.ForeignKeyConstraint(['primary_artifact_id'], ['artifacts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'major', 'minor', name='uq_parameters_version')
    )
    with op.batch_alter_table('parameters_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parameters_versions_create_us'), ['create_us'], unique=False)
        batch_op.create_index(batch_op.f('ix_parameters_versions_model_id'), ['model_id'], unique=False)

    op.create_table('aliases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('parameters_id', sa.Integer(), nullable=False),
    sa.Column('protected', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.String(), nullable=False),
    sa.Column('update_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['parameters_id'], ['parameters_versions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'name', name='uq_alias_name')
    )
    with op.batch_alter_table('aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aliases_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_aliases_parameters_id'), ['parameters_id'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('parameters_id', sa.Integer(), nullable=False),
    sa.Column('create_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['parameters_id'], ['parameters_versions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scope', 'key', name='uq_idempotency_key')
    )
    op.create_table('iov_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('since', sa.BigInteger(), nullable=False),
    sa.Column('parameters_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('create_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['parameters_id'], ['parameters_versions.id'], ),
    sa.ForeignKeyConstraint(['tag_id'], ['iov_tags.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tag_id', 'since', name='uq_iov_since')
    )
    with op.batch_alter_table('iov_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_iov_entries_parameters_id'), ['parameters_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_iov_entries_tag_id'), ['tag_id'], unique=False)

    op.create_table('parameters_datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('parameters_id', sa.Integer(), nullable=False),
    sa.Column('dataset', sa.String(), nullable=False),
    sa.Column('dataset_version_id', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['parameters_id'], ['parameters_versions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('parameters_datasets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parameters_datasets_dataset_version_id'), ['dataset_version_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_parameters_datasets_parameters_id'), ['parameters_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('parameters_datasets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parameters_datasets_parameters_id'))
        batch_op.drop_index(batch_op.f('ix_parameters_datasets_dataset_version_id'))

    op.drop_table('parameters_datasets')
    with op.batch_alter_table('iov_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_iov_entries_tag_id'))
        batch_op.drop_index(batch_op.f('ix_iov_entries_parameters_id'))

    op.drop_table('iov_entries')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aliases_parameters_id'))
        batch_op.drop_index(batch_op.f('ix_aliases_model_id'))

    op.drop_table('aliases')
    with op.batch_alter_table('parameters_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parameters_versions_model_id'))
        batch_op.drop_index(batch_op.f('ix_parameters_versions_create_us'))

    op.drop_table('parameters_versions')
    with op.batch_alter_table('model_types', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_types_model_id'))

    op.drop_table('model_types')
    with op.batch_alter_table('iov_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_iov_tags_name'))
        batch_op.drop_index(batch_op.f('ix_iov_tags_model_id'))

    op.drop_table('iov_tags')
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifacts_sha256'))
        batch_op.drop_index(batch_op.f('ix_artifacts_model_id'))
        batch_op.drop_index(batch_op.f('ix_artifacts_artifact_id'))

    op.drop_table('artifacts')
    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.drop_index('ix_alias_events_model_alias')

    op.drop_table('alias_events')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_models_name'))

    op.drop_table('models')
    with op.batch_alter_table('global_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_global_tags_name'))

    op.drop_table('global_tags')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_model'))
        batch_op.drop_index(batch_op.f('ix_audit_events_event_us'))
        batch_op.drop_index(batch_op.f('ix_audit_events_actor'))
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')


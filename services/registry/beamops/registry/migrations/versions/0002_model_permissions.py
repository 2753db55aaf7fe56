"""Per-model permissions: models.restricted and the model_permissions grants table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('restricted', sa.Boolean(), nullable=False, server_default=sa.false()))

    op.create_table('model_permissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('principal', sa.String(length=200), nullable=False),
    sa.Column('role', sa.Integer(), nullable=False),
    sa.Column('granted_by', sa.String(), nullable=False),
    sa.Column('create_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'principal', name='uq_model_permission')
    )
    with op.batch_alter_table('model_permissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_permissions_model_id'), ['model_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('model_permissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_permissions_model_id'))
    op.drop_table('model_permissions')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('restricted')

"""Mark root pages stale instead of re-rendering them on every new project.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("simple_pages") as batch:
        batch.add_column(sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("simple_pages") as batch:
        batch.drop_column("stale")

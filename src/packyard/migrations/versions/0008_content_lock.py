"""Content locks: locked content takes no deploys or changes until unlocked, and says why in its message.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Constant server defaults: SQLite adds the columns in place, no table rebuild.
    op.add_column("content", sa.Column("locked", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("content", sa.Column("locked_message", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("content") as batch:
        batch.drop_column("locked_message")
        batch.drop_column("locked")

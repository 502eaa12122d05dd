"""Content resource limits enforced by the sandbox: memory, processes and open files per process.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without defaults: SQLite adds them in place, no table rebuild.
    op.add_column("content", sa.Column("memory_limit", sa.BigInteger(), nullable=True))
    op.add_column("content", sa.Column("process_limit", sa.Integer(), nullable=True))
    op.add_column("content", sa.Column("open_files_limit", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("content") as batch:
        for name in ("memory_limit", "process_limit", "open_files_limit"):
            batch.drop_column(name)

"""Content runtime settings: process counts, connections per process, load factor and timeouts.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INTEGERS = (
    "min_processes",
    "max_processes",
    "max_conns_per_process",
    "idle_timeout",
    "init_timeout",
    "connection_timeout",
    "read_timeout",
)


def upgrade() -> None:
    # Nullable columns without defaults: SQLite adds them in place, no table rebuild.
    for name in INTEGERS:
        op.add_column("content", sa.Column(name, sa.Integer(), nullable=True))
    op.add_column("content", sa.Column("load_factor", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("content") as batch:
        for name in (*INTEGERS, "load_factor"):
            batch.drop_column(name)

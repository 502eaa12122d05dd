"""Core metadata (PEP 658 `.metadata`) in the database, content-addressed, instead of one blob each.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "core_metadata",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_core_metadata")),
    )


def downgrade() -> None:
    op.drop_table("core_metadata")

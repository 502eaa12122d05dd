"""Mirror sources, file deletion and upstream URLs, block rules, curated allowlists, yank history index.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("upstream", sa.Text(), nullable=True))
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(), nullable=True))
    op.create_table(
        "mirror_pages",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("found", sa.Boolean(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_mirror_pages_source_id_sources")),
        sa.PrimaryKeyConstraint("source_id", "name", name=op.f("pk_mirror_pages")),
    )
    op.create_table(
        "block_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=True),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("specifier", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"], ["repositories.id"], name=op.f("fk_block_rules_repository_id_repositories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_rules")),
    )
    op.create_index(op.f("ix_block_rules_project"), "block_rules", ["project"])
    op.create_table(
        "curated_entries",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("specifier", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_curated_entries_source_id_sources")),
        sa.PrimaryKeyConstraint("source_id", "project", name=op.f("pk_curated_entries")),
    )
    op.create_index("ix_events_source_project", "events", ["source_id", "project"])


def downgrade() -> None:
    op.drop_index("ix_events_source_project", table_name="events")
    op.drop_table("curated_entries")
    op.drop_index(op.f("ix_block_rules_project"), table_name="block_rules")
    op.drop_table("block_rules")
    op.drop_table("mirror_pages")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("url")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("upstream")

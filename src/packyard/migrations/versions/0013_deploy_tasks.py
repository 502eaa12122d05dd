"""Deploy tasks and their output in the database, so any node answers rsconnect's poll of a task; and a content's
draft bundle, so any node serves it.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deploy_tasks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("content_guid", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=300), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_tasks")),
    )
    op.create_index(op.f("ix_deploy_tasks_heartbeat_at"), "deploy_tasks", ["heartbeat_at"])
    op.create_index(op.f("ix_deploy_tasks_finished_at"), "deploy_tasks", ["finished_at"])
    op.create_table(
        "deploy_task_lines",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["deploy_tasks.id"], name=op.f("fk_deploy_task_lines_task_id_deploy_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "number", name=op.f("pk_deploy_task_lines")),
    )
    with op.batch_alter_table("content") as batch:
        batch.add_column(sa.Column("draft_bundle_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("content") as batch:
        batch.drop_column("draft_bundle_id")
    op.drop_table("deploy_task_lines")
    op.drop_table("deploy_tasks")

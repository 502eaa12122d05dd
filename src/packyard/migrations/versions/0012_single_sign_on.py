"""Single sign-on: users from an OpenID provider, provider groups, repository reader groups, identity federation's
trust rules and spent tokens, and device authorizations.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("oidc_subject", sa.String(length=600), nullable=True))
        batch.create_unique_constraint("uq_users_oidc_subject", ["oidc_subject"])
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("origin", sa.String(length=20), server_default="local", nullable=False))
    with op.batch_alter_table("repositories") as batch:
        batch.add_column(sa.Column("reader_groups", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "trust_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("audience", sa.String(length=500), nullable=False),
        sa.Column("claims", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_trust_rules_source_id_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_rules")),
    )
    op.create_index(op.f("ix_trust_rules_source_id"), "trust_rules", ["source_id"])
    op.create_table(
        "spent_tokens",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_spent_tokens")),
    )
    op.create_index(op.f("ix_spent_tokens_expires_at"), "spent_tokens", ["expires_at"])
    op.create_table(
        "device_requests",
        sa.Column("device_code_hash", sa.String(length=64), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("device_code_hash", name=op.f("pk_device_requests")),
    )
    op.create_index(op.f("ix_device_requests_expires_at"), "device_requests", ["expires_at"])


def downgrade() -> None:
    op.drop_table("device_requests")
    op.drop_table("spent_tokens")
    op.drop_table("trust_rules")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("reader_groups")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("origin")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_oidc_subject", type_="unique")
        batch.drop_column("oidc_subject")

"""clusters

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 14:03:12.230136
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "clusters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("server", sa.String(length=500), nullable=False),
        sa.Column("server_version", sa.String(length=100), nullable=False),
        sa.Column("context", sa.String(length=200), nullable=False),
        sa.Column("base_domain", sa.String(length=253), nullable=False),
        sa.Column("kubeconfig_ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusters")),
        sa.UniqueConstraint("name", name=op.f("uq_clusters_name")),
    )


def downgrade() -> None:

    op.drop_table("clusters")

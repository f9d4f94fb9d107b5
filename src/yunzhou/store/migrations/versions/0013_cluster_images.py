"""cluster images: the registry address a cluster's nodes pull from, and per-project pull credentials

``clusters.registry_address``: host[:port] the cluster's nodes use to reach the platform registry (NULL: the
platform registry's own address). ``pull_credentials``: one per project, the pull-only platform token a
cluster's image pull secret carries (its secret sealed like kubeconfigs).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 17:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(sa.Column("registry_address", sa.String(length=261), nullable=True))
    op.create_table(
        "pull_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_pull_credentials_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pull_credentials")),
        sa.UniqueConstraint("project_id", name=op.f("uq_pull_credentials_project_id")),
    )


def downgrade() -> None:
    op.drop_table("pull_credentials")
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("registry_address")

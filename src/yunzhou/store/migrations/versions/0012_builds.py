"""builds (build jobs: source artifact → OCI image → release, leased by the build worker)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 17:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "builds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(length=63), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("stack", sa.String(length=40), nullable=True),
        sa.Column("stack_version", sa.String(length=40), nullable=True),
        sa.Column("stack_digest", sa.String(length=80), nullable=True),
        sa.Column("artifact", sa.String(length=80), nullable=False),
        sa.Column("image_digest", sa.String(length=80), nullable=True),
        sa.Column("image_size", sa.BigInteger(), nullable=True),
        sa.Column("deps_cached", sa.Boolean(), nullable=True),
        sa.Column("pushed", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("progress_step", sa.String(length=200), nullable=False),
        sa.Column("progress_fraction", sa.Float(), nullable=False),
        sa.Column("deploy", sa.JSON(), nullable=True),
        sa.Column("release", sa.Integer(), nullable=True),
        sa.Column("time_limit_seconds", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("log_path", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_builds_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_builds_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_builds")),
    )
    op.create_index(op.f("ix_builds_project_id"), "builds", ["project_id"], unique=False)
    op.create_index(op.f("ix_builds_environment_id"), "builds", ["environment_id"], unique=False)
    op.create_index(op.f("ix_builds_state"), "builds", ["state"], unique=False)
    op.create_index(op.f("ix_builds_created_at"), "builds", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_builds_created_at"), table_name="builds")
    op.drop_index(op.f("ix_builds_state"), table_name="builds")
    op.drop_index(op.f("ix_builds_environment_id"), table_name="builds")
    op.drop_index(op.f("ix_builds_project_id"), table_name="builds")
    op.drop_table("builds")

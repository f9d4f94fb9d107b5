"""autoscaling (policies state, decisions, scale hooks)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "autoscale_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current", sa.Integer(), nullable=False),
        sa.Column("desired", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_autoscale_decisions_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autoscale_decisions")),
    )
    with op.batch_alter_table("autoscale_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_autoscale_decisions_app_id"), ["app_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_autoscale_decisions_time"), ["time"], unique=False)
    op.create_table(
        "scale_hooks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=True),
        sa.Column("min_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_scale_hooks_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scale_hooks")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_scale_hooks_secret_hash")),
    )
    with op.batch_alter_table("scale_hooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scale_hooks_app_id"), ["app_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scale_hooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scale_hooks_app_id"))
    op.drop_table("scale_hooks")
    with op.batch_alter_table("autoscale_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_autoscale_decisions_time"))
        batch_op.drop_index(batch_op.f("ix_autoscale_decisions_app_id"))
    op.drop_table("autoscale_decisions")

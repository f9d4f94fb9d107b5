"""build_requested_stack (the stack a build was asked for, `--stack`; null when it was detected, so the
builder says truthfully why it chose its stack)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 18:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch_op:
        batch_op.add_column(sa.Column("requested_stack", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("builds") as batch_op:
        batch_op.drop_column("requested_stack")

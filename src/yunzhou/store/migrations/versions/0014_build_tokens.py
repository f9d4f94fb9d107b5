"""build_tokens (a build remembers the token that started it: its release is made only while that token
is valid and its caller may still deploy)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 17:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch_op:
        batch_op.add_column(sa.Column("token_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("builds") as batch_op:
        batch_op.drop_column("token_id")

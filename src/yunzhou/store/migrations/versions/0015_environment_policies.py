"""environment_policies (an environment may require images signed by the platform key, and may switch
its instances' egress to the outside off)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 18:02:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("environments") as batch_op:
        batch_op.add_column(
            sa.Column("require_signed_images", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("egress", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("environments") as batch_op:
        batch_op.drop_column("egress")
        batch_op.drop_column("require_signed_images")

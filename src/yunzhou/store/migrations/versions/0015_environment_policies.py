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


# Plain ALTER TABLE … ADD/DROP COLUMN (SQLite ≥ 3.35 has both): a batch would copy the table and drop
# the old one, which the apps' foreign keys to environments refuse.
def upgrade() -> None:
    op.add_column(
        "environments",
        sa.Column("require_signed_images", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("environments", sa.Column("egress", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    op.drop_column("environments", "egress")
    op.drop_column("environments", "require_signed_images")

"""dns_record_written (when the platform last wrote a record set at its provider: a row never written
is checked for someone else's record before every write, never just overwritten)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 00:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dns_records", sa.Column("written_at", sa.DateTime(timezone=True), nullable=True))
    # rows synced before this revision were written
    op.execute("UPDATE dns_records SET written_at = updated_at WHERE state IN ('synced', 'retained')")


def downgrade() -> None:
    op.drop_column("dns_records", "written_at")

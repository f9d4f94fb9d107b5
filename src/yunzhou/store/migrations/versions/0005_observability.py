"""observability (alert rules, alert state and history, silences, notification channels, healing actions)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 15:45:00
"""

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # reserved; filled in by the change that adds these tables


def downgrade() -> None:
    pass

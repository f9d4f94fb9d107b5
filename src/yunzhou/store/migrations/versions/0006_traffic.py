"""traffic governance (canary rollout analysis state)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 15:45:00
"""

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # reserved; filled in by the change that adds these tables


def downgrade() -> None:
    pass

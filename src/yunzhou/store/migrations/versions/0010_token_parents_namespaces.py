"""token parents (revocation and expiry cascade to tokens a token created) and one environment per
cluster namespace

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLUSTER_TARGETS = sa.text("target LIKE 'cluster:%'")


def _shared_namespaces() -> list[str]:
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT e.target, e.namespace, p.name, e.name FROM environments e"
                " JOIN projects p ON p.id = e.project_id"
                " WHERE e.target LIKE 'cluster:%' AND e.namespace IN ("
                "  SELECT namespace FROM environments WHERE target = e.target"
                "  GROUP BY namespace HAVING COUNT(*) > 1)"
                " ORDER BY e.target, e.namespace, p.name, e.name"
            )
        )
        .all()
    )
    return [f"{target} namespace {ns}: {project}/{env}" for target, ns, project, env in rows]


def upgrade() -> None:
    shared = _shared_namespaces()  # first: nothing changes when the upgrade cannot finish
    if shared:  # they already overwrite each other's objects; an operator must choose which one moves
        raise RuntimeError(
            "environments share a Kubernetes namespace on the same cluster; delete all but one of each"
            " group (recreate it with --namespace) and upgrade again:\n  " + "\n  ".join(shared)
        )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_tokens_parent_id"), ["parent_id"], unique=False)
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.create_index(
            "uq_environments_cluster_namespace",
            ["target", "namespace"],
            unique=True,
            sqlite_where=_CLUSTER_TARGETS,
            postgresql_where=_CLUSTER_TARGETS,
        )


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_index("uq_environments_cluster_namespace")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_parent_id"))
        batch_op.drop_column("parent_id")

"""route_claims (hosts are owned: one app per host and path, one project per host)

Existing apps' routes (their desired release's ``routes`` and ``rollout.previewHost``) are claimed in app
order; a route another app already claimed is left unclaimed (that store was written before ownership,
and the router drops such a route anyway), so the upgrade never fails on old conflicts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 14:45:00
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    claims = op.create_table(
        "route_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("path", sa.String(length=2048), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_route_claims_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_route_claims_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_claims")),
        sa.UniqueConstraint("host", "path", name=op.f("uq_route_claims_host")),
    )
    op.create_index(op.f("ix_route_claims_app_id"), "route_claims", ["app_id"], unique=False)
    op.create_index(op.f("ix_route_claims_project_id"), "route_claims", ["project_id"], unique=False)
    _claim_existing_routes(claims)


def _claim_existing_routes(claims: sa.Table) -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT apps.id, environments.project_id, releases.settings FROM apps"
            " JOIN environments ON environments.id = apps.environment_id"
            " JOIN releases ON releases.app_id = apps.id AND releases.number = apps.desired_release"
            " ORDER BY apps.id"
        )
    ).all()
    owner_of_host: dict[str, int] = {}
    taken: set[tuple[str, str]] = set()
    for app_id, project_id, settings in rows:
        for host, path in _routes_of(settings):
            if (host, path) in taken or owner_of_host.get(host, project_id) != project_id:
                continue
            taken.add((host, path))
            owner_of_host[host] = project_id
            conn.execute(claims.insert().values(host=host, path=path, app_id=app_id, project_id=project_id))


def _routes_of(settings: Any) -> list[tuple[str, str]]:
    doc = json.loads(settings) if isinstance(settings, str) else settings
    if not isinstance(doc, dict):
        return []
    out: list[tuple[str, str]] = []
    for route in doc.get("routes") or []:
        if isinstance(route, dict) and isinstance(route.get("host"), str):
            path = str(route.get("path", "/")).rstrip("/") or "/"
            out.append((route["host"], path))
    preview = (doc.get("rollout") or {}).get("previewHost")
    if isinstance(preview, str) and preview:
        out.append((preview, "/"))
    return list(dict.fromkeys(out))


def downgrade() -> None:
    op.drop_index(op.f("ix_route_claims_project_id"), table_name="route_claims")
    op.drop_index(op.f("ix_route_claims_app_id"), table_name="route_claims")
    op.drop_table("route_claims")

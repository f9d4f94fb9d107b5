"""names (DNS providers, an environment's naming rule and TLS mode, record ownership, custom domains)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 00:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (see 0015): a batch would copy environments, which the apps' foreign keys refuse
    op.add_column("environments", sa.Column("names", sa.JSON(), nullable=True))
    op.add_column("environments", sa.Column("tls", sa.String(length=100), nullable=True))
    op.create_table(
        "dns_providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secret_ciphertext", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dns_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_dns_providers_name")),
    )
    op.create_table(
        "dns_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=63), nullable=False),
        sa.Column("zone", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("ttl", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=True),
        sa.Column("environment_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_dns_records_app_id_apps"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_dns_records_environment_id_environments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dns_records")),
        sa.UniqueConstraint("provider", "zone", "name", "type", name=op.f("uq_dns_records_provider")),
    )
    op.create_index(op.f("ix_dns_records_app_id"), "dns_records", ["app_id"])
    op.create_table(
        "custom_domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_custom_domains_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_custom_domains_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_domains")),
        sa.UniqueConstraint("host", name=op.f("uq_custom_domains_host")),
    )
    op.create_index(op.f("ix_custom_domains_app_id"), "custom_domains", ["app_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_custom_domains_app_id"), table_name="custom_domains")
    op.drop_table("custom_domains")
    op.drop_index(op.f("ix_dns_records_app_id"), table_name="dns_records")
    op.drop_table("dns_records")
    op.drop_table("dns_providers")
    op.drop_column("environments", "tls")
    op.drop_column("environments", "names")

"""observability (alert rules, alert state and history, silences, notification channels, healing actions)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "active_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_key", sa.String(length=300), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("alertname", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("env", sa.String(length=63), nullable=False),
        sa.Column("app", sa.String(length=63), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_active_alerts")),
        sa.UniqueConstraint("rule_key", "fingerprint", name=op.f("uq_active_alerts_rule_key")),
    )
    op.create_index(op.f("ix_active_alerts_project"), "active_alerts", ["project"], unique=False)
    op.create_index(op.f("ix_active_alerts_rule_key"), "active_alerts", ["rule_key"], unique=False)
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("env", sa.String(length=63), nullable=False),
        sa.Column("app", sa.String(length=63), nullable=False),
        sa.Column("rule_key", sa.String(length=300), nullable=False),
        sa.Column("alertname", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("release", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index(op.f("ix_alert_events_project"), "alert_events", ["project"], unique=False)
    op.create_index(op.f("ix_alert_events_rule_key"), "alert_events", ["rule_key"], unique=False)
    op.create_index(op.f("ix_alert_events_time"), "alert_events", ["time"], unique=False)
    op.create_table(
        "alert_receivers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("route", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_receivers")),
        sa.UniqueConstraint("project", "name", name=op.f("uq_alert_receivers_project")),
    )
    op.create_index(op.f("ix_alert_receivers_project"), "alert_receivers", ["project"], unique=False)
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("env", sa.String(length=63), nullable=False),
        sa.Column("app", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("project", "env", "app", "name", name=op.f("uq_alert_rules_project")),
    )
    op.create_index(op.f("ix_alert_rules_project"), "alert_rules", ["project"], unique=False)
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_silences")),
    )
    op.create_index(op.f("ix_alert_silences_ends_at"), "alert_silences", ["ends_at"], unique=False)
    op.create_index(op.f("ix_alert_silences_project"), "alert_silences", ["project"], unique=False)
    op.create_table(
        "alert_rule_health",
        sa.Column("rule_key", sa.String(length=300), nullable=False),
        sa.Column("health", sa.String(length=10), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule_key", name=op.f("pk_alert_rule_health")),
    )


def downgrade() -> None:
    op.drop_table("alert_rule_health")
    op.drop_index(op.f("ix_alert_silences_project"), table_name="alert_silences")
    op.drop_index(op.f("ix_alert_silences_ends_at"), table_name="alert_silences")
    op.drop_table("alert_silences")
    op.drop_index(op.f("ix_alert_rules_project"), table_name="alert_rules")
    op.drop_table("alert_rules")
    op.drop_index(op.f("ix_alert_receivers_project"), table_name="alert_receivers")
    op.drop_table("alert_receivers")
    op.drop_index(op.f("ix_alert_events_time"), table_name="alert_events")
    op.drop_index(op.f("ix_alert_events_rule_key"), table_name="alert_events")
    op.drop_index(op.f("ix_alert_events_project"), table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index(op.f("ix_active_alerts_rule_key"), table_name="active_alerts")
    op.drop_index(op.f("ix_active_alerts_project"), table_name="active_alerts")
    op.drop_table("active_alerts")

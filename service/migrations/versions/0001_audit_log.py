"""audit_log: one row per execute, written before its webhook is delivered.

Revision ID: 0001
Revises:
Create Date: 2025-10-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        # BY DEFAULT (not ALWAYS) so restores and data fixes may carry explicit ids.
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("request_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("webhook_id", sa.Text, nullable=False),
        sa.Column("workspace", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("delivery_status", sa.Text, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("latency_ms", sa.Double, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("request_id", name="uq_audit_log_request_id"),
        sa.CheckConstraint("status IN ('pending', 'ok', 'error')", name="ck_audit_log_status"),
        sa.CheckConstraint("attempts >= 0", name="ck_audit_log_attempts"),
        # A row is complete exactly when it has left 'pending'.
        sa.CheckConstraint("(status = 'pending') = (completed_at IS NULL)", name="ck_audit_log_completed"),
    )
    # Newest-first listing and keyset pagination on (created_at, id).
    op.create_index(
        "ix_audit_log_created_at_id", "audit_log", [sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_index("ix_audit_log_workspace_created_at", "audit_log", ["workspace", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_workspace_created_at", table_name="audit_log")
    op.drop_index("ix_audit_log_created_at_id", table_name="audit_log")
    op.drop_table("audit_log")

"""Runs dispatched to workers (scale-out mode): their status, attempt (fencing token) and worker.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "run",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("chatflowid", sa.String(36), nullable=False),
        sa.Column("chatId", sa.String(), nullable=False),
        sa.Column("sessionId", sa.String(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("worker", sa.String(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failure", sa.String(64), nullable=True),
        sa.Column("createdDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run"),
    )
    op.create_index("ix_run_chatflowid_chatId_status", "run", ["chatflowid", "chatId", "status"])
    op.create_index("ix_run_status_updatedDate", "run", ["status", "updatedDate"])


def downgrade() -> None:
    op.drop_table("run")

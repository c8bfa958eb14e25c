"""Crash-safe exchanges: which process runs an exchange, and the live processes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

An exchange is now stored as "running" when its run starts; `instanceId` names the process running
it, and `server_instance` lists live processes, so that recovery can mark what a crashed process left
running as "interrupted".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chat_message") as batch:
        batch.add_column(sa.Column("instanceId", sa.String(36), nullable=True))
    op.create_index("ix_chat_message_status", "chat_message", ["status"])
    op.create_table(
        "server_instance",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("startedDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeatDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_server_instance"),
    )


def downgrade() -> None:
    op.drop_table("server_instance")
    op.drop_index("ix_chat_message_status", "chat_message")
    with op.batch_alter_table("chat_message") as batch:
        batch.drop_column("instanceId")

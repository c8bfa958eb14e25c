"""Chatflows and chat messages, shaped like Flowise's tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Written out by hand rather than imported from `tables.py`, so that later model changes cannot
silently rewrite what this revision did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_flow",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("flowData", sa.Text(), nullable=False),
        sa.Column("deployed", sa.Boolean(), nullable=True),
        sa.Column("isPublic", sa.Boolean(), nullable=True),
        sa.Column("apikeyid", sa.String(), nullable=True),
        sa.Column("chatbotConfig", sa.Text(), nullable=True),
        sa.Column("apiConfig", sa.Text(), nullable=True),
        sa.Column("analytic", sa.Text(), nullable=True),
        sa.Column("speechToText", sa.Text(), nullable=True),
        sa.Column("followUpPrompts", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("type", sa.String(20), server_default="CHATFLOW", nullable=False),
        sa.Column("createdDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chat_flow"),
    )
    op.create_table(
        "chat_message",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("chatflowid", sa.String(36), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("sourceDocuments", sa.Text(), nullable=True),
        sa.Column("usedTools", sa.Text(), nullable=True),
        sa.Column("fileAnnotations", sa.Text(), nullable=True),
        sa.Column("agentReasoning", sa.Text(), nullable=True),
        sa.Column("fileUploads", sa.Text(), nullable=True),
        sa.Column("artifacts", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("chatType", sa.String(20), server_default="INTERNAL", nullable=False),
        sa.Column("chatId", sa.String(), nullable=False),
        sa.Column("memoryType", sa.String(), nullable=True),
        sa.Column("sessionId", sa.String(), nullable=True),
        sa.Column("createdDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leadEmail", sa.Text(), nullable=True),
        sa.Column("followUpPrompts", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), server_default="complete", nullable=False),
        sa.Column("runId", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_chat_message"),
    )
    op.create_index("ix_chat_message_chatId", "chat_message", ["chatId"])
    op.create_index("ix_chat_message_sessionId", "chat_message", ["sessionId"])
    op.create_index("ix_chat_message_createdDate", "chat_message", ["createdDate"])
    op.create_index("ix_chat_message_runId", "chat_message", ["runId"])
    op.create_index(
        "ix_chat_message_chatflowid_sessionId_createdDate",
        "chat_message",
        ["chatflowid", "sessionId", "createdDate"],
    )


def downgrade() -> None:
    op.drop_table("chat_message")
    op.drop_table("chat_flow")

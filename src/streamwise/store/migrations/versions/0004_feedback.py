"""Feedback on answers: a rating (thumbs up or down) and a comment per message, as Flowise keeps it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_message_feedback",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("chatflowid", sa.String(36), nullable=False),
        sa.Column("chatId", sa.String(), nullable=False),
        sa.Column("messageId", sa.String(36), nullable=False),
        sa.Column("rating", sa.String(16), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("createdDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chat_message_feedback"),
        sa.UniqueConstraint("messageId", name="uq_chat_message_feedback_messageId"),
    )
    op.create_index("ix_chat_message_feedback_chatflowid", "chat_message_feedback", ["chatflowid"])
    op.create_index("ix_chat_message_feedback_chatId", "chat_message_feedback", ["chatId"])


def downgrade() -> None:
    op.drop_table("chat_message_feedback")

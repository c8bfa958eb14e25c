"""Upsert records: what each vector store was given, by content hash.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "upsert_record",
        sa.Column("namespace", sa.String(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("createdDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "key", name="pk_upsert_record"),
    )
    op.create_index("ix_upsert_record_namespace_source", "upsert_record", ["namespace", "source"])


def downgrade() -> None:
    op.drop_table("upsert_record")

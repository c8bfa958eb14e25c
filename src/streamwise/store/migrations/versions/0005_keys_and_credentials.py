"""API keys (stored as slow hashes) and model credentials (encrypted), as Flowise keeps them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "apikey",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("keyName", sa.String(), nullable=False),
        sa.Column("lookup", sa.String(32), nullable=False),
        sa.Column("apiSecret", sa.Text(), nullable=False),
        sa.Column("createdDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_apikey"),
        sa.UniqueConstraint("lookup", name="uq_apikey_lookup"),
    )
    op.create_table(
        "credential",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("credentialName", sa.String(), nullable=False),
        sa.Column("encryptedData", sa.Text(), nullable=False),
        sa.Column("createdDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credential"),
    )


def downgrade() -> None:
    op.drop_table("credential")
    op.drop_table("apikey")

"""id counters: SQLite draws process instance ids unique across processes (issue 16, R-OPS-1)

Revision ID: 0013_id_counters
Revises: 0013_english
Create Date: 2026-12-06 04:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0013_id_counters"
down_revision = "0013_english"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "id_counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("id_counters")

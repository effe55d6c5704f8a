"""departments may carry their name in English beside the Chinese one (issue 17, R-UI-1)

Revision ID: 0015_department_english
Revises: 0014_evaluations
Create Date: 2026-12-06 23:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0015_department_english"
down_revision = "0014_evaluations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch copy of `departments` would drop a table that users refer to.
    op.add_column("departments", sa.Column("name_en", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("departments", "name_en")  # SQLite 3.35+ drops a column in place

"""performance records may be about a person: a commendation names who (issue 18, R-SUP-5)

Revision ID: 0016_performance_person
Revises: 0015_department_english
Create Date: 2026-12-07 22:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0016_performance_person"
down_revision = "0015_department_english"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN with its REFERENCES inline (SQLite cannot add a constraint afterwards, and a
    # batch copy of the table would drop tables that others refer to).
    op.add_column("performance_records",
                  sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
                  inline_references=True)
    op.create_index("ix_performance_records_user_id", "performance_records", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_performance_records_user_id", table_name="performance_records")
    op.drop_column("performance_records", "user_id")  # SQLite 3.35+ drops a column in place

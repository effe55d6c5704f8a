"""performance records: the consequences of assessment results (issue 18, R-SUP-5)

Revision ID: 0012_supervise_perf
Revises: 0011_groups
Create Date: 2026-12-04 22:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = "0012_supervise_perf"
down_revision = "0012_serving_inbox_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "performance_records",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("departments.id"), nullable=False),
        sa.Column("grade", sa.String(32), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assessment_instance_id", sa.Integer(), sa.ForeignKey("process_instances.id"), nullable=True),
        sa.Column("rectification_instance_id", sa.Integer(), sa.ForeignKey("process_instances.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
    )
    op.create_index("ix_performance_records_period", "performance_records", ["period", "department_id"])
    op.create_index("ix_performance_records_department_id", "performance_records", ["department_id"])


def downgrade() -> None:
    op.drop_index("ix_performance_records_department_id", table_name="performance_records")
    op.drop_index("ix_performance_records_period", table_name="performance_records")
    op.drop_table("performance_records")

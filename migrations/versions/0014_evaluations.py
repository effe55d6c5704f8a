"""process evaluations: a monthly evaluation per process (issue 18, R-WF-4)

Revision ID: 0014_evaluations
Revises: 0013_id_counters
Create Date: 2026-12-06 05:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0014_evaluations"
down_revision = "0013_id_counters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "process_evaluations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("process_key", sa.String(128), nullable=False, index=True),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("scheduled_jobs.id", ondelete="SET NULL"), nullable=True),
        sa.UniqueConstraint("process_key", "period"),
    )


def downgrade() -> None:
    op.drop_table("process_evaluations")

"""open tasks keep the designer's English instructions beside the Chinese ones (issue 17, R-UI-1)

Revision ID: 0013_english
Revises: 0012_supervise_perf
Create Date: 2026-12-06 04:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0013_english"
down_revision = "0012_supervise_perf"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("open_tasks") as batch:
        batch.add_column(sa.Column("instructions_en", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("open_tasks") as batch:
        batch.drop_column("instructions_en")

"""break-glass grants: a system administrator's time-limited, audited read access to one
document above their clearance (R-SEC-4, R-SEC-7, R-SEC-10)

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-27 22:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "break_glass_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_break_glass_grants_user_document", "break_glass_grants", ["user_id", "document_id"])


def downgrade() -> None:
    op.drop_index("ix_break_glass_grants_user_document", table_name="break_glass_grants")
    op.drop_table("break_glass_grants")

"""the start page's categories and the substitutes of people out of office (issue 17, R-WF-2)

Revision ID: 0012_workspace
Revises: 0011_groups
Create Date: 2026-12-04 21:00:00

A process definition carries the category its diagram names (the start page groups by it); the
built-in procedures deployed before this revision get theirs. `substitutions`: who receives the
tasks offered to a person during a period they are away.
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_workspace"
down_revision = "0012_auditchain_keyed"
branch_labels = None
depends_on = None

# As the built-in diagrams (process_models/*.bpmn) name them when this migration was written.
BUILTIN_CATEGORIES = {
    "account_application": "账号与权限", "permission_change": "账号与权限", "permission_review": "账号与权限",
    "fault_report": "运维保障", "feedback": "综合事务", "file_publication": "文件管理",
    "issue_rectification": "考核与监督", "quarterly_assessment": "考核与监督",
}


def upgrade() -> None:
    with op.batch_alter_table("process_definitions") as batch:
        batch.add_column(sa.Column("category", sa.String(64), nullable=False, server_default=""))
    definitions = sa.table("process_definitions", sa.column("key", sa.String), sa.column("category", sa.String))
    for key, category in BUILTIN_CATEGORIES.items():
        op.execute(definitions.update().where(definitions.c.key == key).values(category=category))
    op.create_table(
        "substitutions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("substitute_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("substitutions")
    with op.batch_alter_table("process_definitions") as batch:
        batch.drop_column("category")

"""notifications are found by their task (issue 16, R-WF-2)

Revision ID: 0020_notifications_by_task
Revises: 0019_audit_lock_per_schema
Create Date: 2026-12-07 21:00:00

A task that leaves the inbox marks its notifications read (service/notifications.py, `done_with`)
with `WHERE task_id IN (…) AND read_at IS NULL`, once per completion. Without an index on task_id
both databases read every notification ever sent to find them, so each completion cost more the
longer the platform had run. The indicators' overdue-notice counts join on task_id too.
"""
from alembic import op

revision = "0020_notifications_by_task"
down_revision = "0019_audit_lock_per_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_notifications_task", "notifications", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_notifications_task", table_name="notifications")

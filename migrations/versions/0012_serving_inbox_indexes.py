"""indexes for "my tasks" as a UNION ALL of "assigned to me" and "offered to my candidates"
(issue 16, R-WF-2)

Revision ID: 0012_serving_inbox_indexes
Revises: 0011_groups
Create Date: 2026-12-04 21:00:00

Each part of service/inbox.py's union reads one index: the assignee's tasks in page order, and the
candidates of a user or a group with their task ids (no table visit to find them). The new indexes
begin with the old ones' columns, which they replace; the assignee's holds assigned tasks only. ix_open_tasks_page answers, for a task id found among the
candidates, whether it is unassigned and where it sorts, without reading the row.
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_serving_inbox_indexes"
down_revision = "0012_auditor_findings"
branch_labels = None
depends_on = None

# Partial: the unassigned tasks are found from their candidates, and an index holding them would
# tempt the planner to walk all of them instead (as the OR did).
ASSIGNED = sa.text("assignee_id IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_open_tasks_assignee_order", "open_tasks", ["assignee_id", "due_at", "created_at", "id"],
                    sqlite_where=ASSIGNED, postgresql_where=ASSIGNED)
    op.drop_index("ix_open_tasks_assignee_id", table_name="open_tasks")
    op.create_index("ix_open_tasks_page", "open_tasks", ["id", "assignee_id", "due_at", "created_at"])
    op.create_index("ix_task_candidates_user_task", "task_candidates", ["user_id", "task_id"])
    op.drop_index("ix_task_candidates_user", table_name="task_candidates")
    op.create_index("ix_task_candidates_group_task", "task_candidates", ["group_code", "task_id"])
    op.drop_index("ix_task_candidates_group", table_name="task_candidates")


def downgrade() -> None:
    op.create_index("ix_task_candidates_group", "task_candidates", ["group_code"])
    op.drop_index("ix_task_candidates_group_task", table_name="task_candidates")
    op.create_index("ix_task_candidates_user", "task_candidates", ["user_id"])
    op.drop_index("ix_task_candidates_user_task", table_name="task_candidates")
    op.create_index("ix_open_tasks_assignee_id", "open_tasks", ["assignee_id"])
    op.drop_index("ix_open_tasks_page", table_name="open_tasks")
    op.drop_index("ix_open_tasks_assignee_order", table_name="open_tasks")

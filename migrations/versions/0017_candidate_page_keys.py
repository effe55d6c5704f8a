"""task candidates carry their task's sort key, indexed per user and per group in page order
(issue 16, R-WF-2)

Revision ID: 0017_candidate_page_keys
Revises: 0016_performance_person
Create Date: 2026-12-08 10:00:00

"My tasks" reads, for each of a person's groups and for the person, the first unclaimed tasks in
page order straight from these indexes, instead of sorting every task offered to them
(service/inbox.py). They begin with the columns of the indexes of 0012_serving_inbox_indexes, which
they replace. due_key is the task's due_at, or 9999-12-31 for a task without a deadline
(service/models.py, TaskCandidate, says why).
"""
import sqlalchemy as sa
from alembic import op

revision = "0017_candidate_page_keys"
down_revision = "0016_performance_person"
branch_labels = None
depends_on = None

COLUMNS = ("due_key", "created_at")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite adds a NOT NULL column only with a constant default. It is NO_DEADLINE as each database
    # stores it (on SQLite, SQLAlchemy's text form), so that due_key keeps it for tasks without a
    # deadline; created_at is a placeholder that the UPDATE overwrites.
    no_deadline = "'9999-12-31 00:00:00.000000'" if sqlite else "'9999-12-31 00:00:00+00'"
    for name in COLUMNS:
        op.add_column("task_candidates", sa.Column(name, sa.DateTime(timezone=True), nullable=False,
                                                   server_default=sa.text(no_deadline)))
    op.execute("UPDATE task_candidates SET due_key = COALESCE(t.due_at, task_candidates.due_key), "
               "created_at = t.created_at FROM open_tasks t WHERE t.id = task_candidates.task_id")
    if not sqlite:  # SQLite cannot drop a default in place; the models always give both values
        for name in COLUMNS:
            op.alter_column("task_candidates", name, server_default=None)
    op.create_index("ix_task_candidates_user_page", "task_candidates", ["user_id", "due_key", "created_at", "task_id"])
    op.drop_index("ix_task_candidates_user_task", table_name="task_candidates")
    op.create_index("ix_task_candidates_group_page", "task_candidates",
                    ["group_code", "due_key", "created_at", "task_id"])
    op.drop_index("ix_task_candidates_group_task", table_name="task_candidates")


def downgrade() -> None:
    op.create_index("ix_task_candidates_group_task", "task_candidates", ["group_code", "task_id"])
    op.drop_index("ix_task_candidates_group_page", table_name="task_candidates")
    op.create_index("ix_task_candidates_user_task", "task_candidates", ["user_id", "task_id"])
    op.drop_index("ix_task_candidates_user_page", table_name="task_candidates")
    for name in COLUMNS:
        op.drop_column("task_candidates", name)  # SQLite 3.35+ drops a column in place

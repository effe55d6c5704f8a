"""analytics: a user task's ready and claim times on the history, the process version on each
step, and indexes for element statistics and indicators at scale (R-WF-4, R-SUP-3)

Revision ID: 0007
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("open_tasks") as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("instance_steps") as batch_op:
        batch_op.add_column(sa.Column("definition_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key("fk_instance_steps_definition", "process_definitions", ["definition_id"], ["id"])
    # Existing history gets its instance's version; ready and claim times were never recorded.
    op.execute("UPDATE instance_steps SET definition_id = (SELECT p.definition_id FROM process_instances p "
               "WHERE p.id = instance_steps.instance_id)")
    with op.batch_alter_table("instance_steps") as batch_op:
        batch_op.create_index("ix_instance_steps_definition_completed", ["definition_id", "completed_at"])
        batch_op.create_index("ix_instance_steps_completed_user", ["completed_at", "user_id"])
        batch_op.create_index("ix_instance_steps_task", ["task_id"])


def downgrade() -> None:
    with op.batch_alter_table("instance_steps") as batch_op:
        batch_op.drop_index("ix_instance_steps_task")
        batch_op.drop_index("ix_instance_steps_completed_user")
        batch_op.drop_index("ix_instance_steps_definition_completed")
        batch_op.drop_constraint("fk_instance_steps_definition", type_="foreignkey")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("started_at")
        batch_op.drop_column("definition_id")
    with op.batch_alter_table("open_tasks") as batch_op:
        batch_op.drop_column("claimed_at")

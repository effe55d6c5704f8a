"""analytics: a user task's ready and claim times on the history, the process version on each
step with its duration and waiting seconds, indexes for element statistics and indicators at scale,
and snapshots of the indicators per period (R-WF-4, R-SUP-3)

Revision ID: 0007
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("indicator_snapshots",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("figures", sa.JSON(), nullable=False),
                    sa.Column("people", sa.JSON(), nullable=False),
                    sa.PrimaryKeyConstraint("id"),
                    sa.UniqueConstraint("period_start", "period_end", name="uq_indicator_snapshots_period"))
    with op.batch_alter_table("open_tasks") as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("instance_steps") as batch_op:
        batch_op.add_column(sa.Column("definition_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("duration_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("wait_s", sa.Float(), nullable=True))
        batch_op.create_foreign_key("fk_instance_steps_definition", "process_definitions", ["definition_id"], ["id"])
    # Existing history gets its instance's version; ready and claim times were never recorded.
    op.execute("UPDATE instance_steps SET definition_id = (SELECT p.definition_id FROM process_instances p "
               "WHERE p.id = instance_steps.instance_id)")
    with op.batch_alter_table("instance_steps") as batch_op:
        # Covering: the element statistics read only these columns (docs/architecture.md).
        batch_op.create_index("ix_instance_steps_definition_completed",
                              ["definition_id", "completed_at", "element_id", "duration_s", "wait_s", "instance_id",
                               "decision"])
        batch_op.create_index("ix_instance_steps_completed_user", ["completed_at", "user_id"])
        batch_op.create_index("ix_instance_steps_task", ["task_id"])


def downgrade() -> None:
    with op.batch_alter_table("instance_steps") as batch_op:
        batch_op.drop_index("ix_instance_steps_task")
        batch_op.drop_index("ix_instance_steps_completed_user")
        batch_op.drop_index("ix_instance_steps_definition_completed")
        batch_op.drop_constraint("fk_instance_steps_definition", type_="foreignkey")
        batch_op.drop_column("wait_s")
        batch_op.drop_column("duration_s")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("started_at")
        batch_op.drop_column("definition_id")
    with op.batch_alter_table("open_tasks") as batch_op:
        batch_op.drop_column("claimed_at")
    op.drop_table("indicator_snapshots")

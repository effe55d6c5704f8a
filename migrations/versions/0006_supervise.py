"""indexes for the supervisors' live views: open tasks grouped by element per process, and
instances per department (a department administrator's scope)

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-27 22:50:00
"""
from alembic import op

revision = '0006'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_open_tasks_process_element', 'open_tasks', ['process_key', 'element_id'], unique=False)
    op.create_index('ix_instances_department_state', 'process_instances', ['department_id', 'state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_instances_department_state', table_name='process_instances')
    op.drop_index('ix_open_tasks_process_element', table_name='open_tasks')

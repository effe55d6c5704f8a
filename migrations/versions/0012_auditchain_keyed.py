"""the audit chain is keyed: each row names the key its HMAC-SHA256 was made with (issue 15, R-SEC-3,
R-SEC-8)

Revision ID: 0012_auditchain_keyed
Revises: 0011_groups
Create Date: 2026-12-04 21:00:00

Rows already in the log keep `key_id` NULL: they are the legacy segment, verified with the plain
SHA-256 formula they were written with. The first keyed row chains onto the legacy head, so the
segment is anchored by the key from then on; a NULL row after a keyed one fails verification
(service/audit_chain.py).
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_auditchain_keyed"
down_revision = "0011_groups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("key_id")

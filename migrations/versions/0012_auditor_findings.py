"""the anomaly review's findings over the audit log, and the auditor group (issue 15, R-SEC-4)

Revision ID: 0012_auditor_findings
Revises: 0011_groups
Create Date: 2026-12-04 21:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_auditor_findings"
down_revision = "0012_workspace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=255), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["instance_id"], ["process_instances.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["person_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    with op.batch_alter_table("audit_findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_findings_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_findings_rule"), ["rule"], unique=False)
        batch_op.create_index("ix_audit_findings_status_found", ["status", "found_at"], unique=False)
    # The built-in group, for installations that already hold the others (`inkless init` and
    # org.ensure_groups add it to new ones).
    groups = sa.table("groups", sa.column("code", sa.String), sa.column("name", sa.String),
                      sa.column("name_en", sa.String))
    bind = op.get_bind()
    if bind.execute(sa.select(groups.c.code).where(groups.c.code == "platform_admin")).first() is not None and \
            bind.execute(sa.select(groups.c.code).where(groups.c.code == "auditor")).first() is None:
        op.execute(groups.insert().values(code="auditor", name="审计员", name_en="Auditors"))


def downgrade() -> None:
    op.execute("DELETE FROM user_groups WHERE group_code = 'auditor'")
    op.execute("DELETE FROM groups WHERE code = 'auditor'")
    with op.batch_alter_table("audit_findings", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_findings_status_found")
        batch_op.drop_index(batch_op.f("ix_audit_findings_rule"))
        batch_op.drop_index(batch_op.f("ix_audit_findings_person_id"))
    op.drop_table("audit_findings")

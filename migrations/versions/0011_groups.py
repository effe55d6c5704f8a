"""functional groups as data: a group belongs to a department (or the platform) and has an
English name beside its Chinese one (issue 14, R-ACC-3, R-WF-1)

Revision ID: 0011_groups
Revises: 0010
Create Date: 2026-12-02 10:00:00

Existing groups stay platform groups (no department). The built-in groups get their English names.
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_groups"
down_revision = "0010"
branch_labels = None
depends_on = None

# As in service.models.BUILTIN_GROUPS when this migration was written (a migration does not import
# the models, which move on).
ENGLISH_NAMES = {
    "dept_head": "Department heads",
    "platform_admin": "Platform management department",
    "supervisor": "Supervision group",
    "designer": "Process designers",
    "confidentiality_officer": "Confidentiality officers",
    "inspector": "Inspectors",
}


def _memberships_parked(change) -> None:
    """SQLite adds a foreign key by rebuilding the table (batch mode: copy, drop, rename). With foreign
    keys on, as the platform's own engine has them (`inkless init`), dropping `groups` fails while
    `user_groups` rows refer to it; so the memberships wait in a temporary table meanwhile."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMPORARY TABLE parked_user_groups AS SELECT user_id, group_code FROM user_groups")
        op.execute("DELETE FROM user_groups")
    change()
    if sqlite:
        op.execute("INSERT INTO user_groups (user_id, group_code) SELECT user_id, group_code FROM parked_user_groups")
        op.execute("DROP TABLE parked_user_groups")


def _add_department() -> None:
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_en", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("department_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_groups_department", "departments", ["department_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_groups_department_id"), ["department_id"], unique=False)


def _drop_department() -> None:
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_groups_department_id"))
        batch_op.drop_constraint("fk_groups_department", type_="foreignkey")
        batch_op.drop_column("department_id")
        batch_op.drop_column("name_en")


def upgrade() -> None:
    _memberships_parked(_add_department)
    with op.batch_alter_table("user_groups", schema=None) as batch_op:
        batch_op.create_index("ix_user_groups_group_code", ["group_code"], unique=False)
    groups = sa.table("groups", sa.column("code", sa.String), sa.column("name_en", sa.String))
    for code, name_en in ENGLISH_NAMES.items():
        op.execute(groups.update().where(groups.c.code == code).values(name_en=name_en))


def downgrade() -> None:
    with op.batch_alter_table("user_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_user_groups_group_code")
    _memberships_parked(_drop_department)

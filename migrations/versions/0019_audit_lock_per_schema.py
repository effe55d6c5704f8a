"""the audit chain's lock is the chain's own, not the database's (R-SEC-8)

Revision ID: 0019_audit_lock_per_schema
Revises: 0018_audit_append
Create Date: 2026-12-07 16:50:00

PostgreSQL's advisory locks are keyed per database, not per schema: with the single key 7301 of
0018, every platform kept in a schema of the same database (a test run's workers, a staging copy
beside production) waited on every other one's audit appends. The lock is now keyed by 7301 and
the object id of the `audit_events` table the function appends to (found through search_path, as
the INSERT is), so each chain has a lock of its own. The function is otherwise 0018's.
"""
from alembic import op

revision = "0019_audit_lock_per_schema"
down_revision = "0018_audit_append"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _function(lock: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION inkless_audit_append(
    guess varchar, p_at timestamptz, p_actor integer, p_action varchar, p_type varchar, p_object varchar,
    p_detail json, p_addr varchar, p_hash varchar, p_kid varchar) RETURNS varchar
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head varchar;
BEGIN
    PERFORM {lock};
    SELECT hash INTO head FROM audit_events ORDER BY id DESC LIMIT 1;
    head := coalesce(head, '{GENESIS}');
    IF head IS DISTINCT FROM guess THEN
        RETURN head;
    END IF;
    INSERT INTO audit_events (at, actor_id, action, object_type, object_id, detail, client_addr, prev_hash, hash,
                              key_id)
    VALUES (p_at, p_actor, p_action, p_type, p_object, p_detail, p_addr, guess, p_hash, p_kid);
    RETURN NULL;
END
$$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_function("pg_advisory_xact_lock(7301, 'audit_events'::regclass::oid::integer)"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_function("pg_advisory_xact_lock(7301)"))

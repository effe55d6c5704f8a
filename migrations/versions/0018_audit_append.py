"""audit append in one round trip on PostgreSQL (issue 16, R-SEC-8)

Revision ID: 0018_audit_append
Revises: 0017_candidate_page_keys
Create Date: 2026-12-07 11:20:00

`inkless_audit_append` takes the chain's lock, reads the head and, if it is the head the caller
linked its event to, inserts the event: what service/audit.py did in three statements. It returns
NULL when it inserted, else the head, which the caller links to and inserts itself (the lock is
held until the transaction ends). PL/pgSQL takes a new snapshot for each statement in a VOLATILE
function under READ COMMITTED, so the head it reads after the lock is the committed one. SQLite
holds its write lock for the whole transaction and needs nothing.
"""
from alembic import op

revision = "0018_audit_append"
down_revision = "0017_candidate_page_keys"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
CREATE OR REPLACE FUNCTION inkless_audit_append(
    guess varchar, p_at timestamptz, p_actor integer, p_action varchar, p_type varchar, p_object varchar,
    p_detail json, p_addr varchar, p_hash varchar, p_kid varchar) RETURNS varchar
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head varchar;
BEGIN
    PERFORM pg_advisory_xact_lock(7301);
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
$$""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS inkless_audit_append(varchar, timestamptz, integer, varchar, varchar, "
                   "varchar, json, varchar, varchar, varchar)")

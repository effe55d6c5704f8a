"""the document library: documents, versions, stored objects, data keys, shares, clearances,
business types, publications and the full-text index (R-DOC-1 … R-DOC-5, R-SEC-3, R-SEC-4)

The index is per database: an FTS5 table kept in sync by triggers on SQLite, a generated
tsvector column with a GIN index on PostgreSQL; both read the jieba-segmented text in
document_search.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 20:18:51.031357
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('business_types',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['business_types.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('business_types', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_business_types_parent_id'), ['parent_id'], unique=False)

    op.create_table('documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('business_type_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('abstract', sa.Text(), nullable=False),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('document_date', sa.Date(), nullable=True),
    sa.Column('security_level', sa.SmallInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('purge_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('audience', sa.String(length=16), nullable=True),
    sa.CheckConstraint("state IN ('active', 'archived', 'deleted')", name='ck_documents_state'),
    sa.CheckConstraint('security_level < 4 OR published_at IS NULL', name='ck_documents_core_secret_unpublished'),
    sa.CheckConstraint('security_level BETWEEN 0 AND 4', name='ck_documents_level'),
    sa.ForeignKeyConstraint(['business_type_id'], ['business_types.id'], ),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('id', 'security_level', name='uq_documents_id_level')
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_business_type_id'), ['business_type_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_document_date'), ['document_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_security_level'), ['security_level'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_state'), ['state'], unique=False)

    op.create_table('user_clearances',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.SmallInteger(), nullable=False),
    sa.Column('granted_by', sa.Integer(), nullable=True),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('level BETWEEN 0 AND 4', name='ck_user_clearances_level'),
    sa.ForeignKeyConstraint(['granted_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_table('document_data_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('master_key_id', sa.String(length=32), nullable=False),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rewrapped_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('document_id')
    )
    with op.batch_alter_table('document_data_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_data_keys_master_key_id'), ['master_key_id'], unique=False)

    op.create_table('document_search',
    sa.Column('document_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('version_number', sa.Integer(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('abstract', sa.Text(), nullable=False),
    sa.Column('keywords', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('body_indexed', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('document_id')
    )
    op.create_table('document_shares',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('security_level', sa.SmallInteger(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('permission', sa.String(length=8), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("permission IN ('read', 'edit')", name='ck_document_shares_permission'),
    sa.CheckConstraint('(user_id IS NULL) <> (department_id IS NULL)', name='ck_document_shares_one_grantee'),
    sa.CheckConstraint('security_level <> 4', name='ck_document_shares_not_core_secret'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.ForeignKeyConstraint(['document_id', 'security_level'], ['documents.id', 'documents.security_level'], name='fk_document_shares_document_level', onupdate='CASCADE', ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('document_id', 'department_id', name='uq_document_shares_department'),
    sa.UniqueConstraint('document_id', 'user_id', name='uq_document_shares_user')
    )
    with op.batch_alter_table('document_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_shares_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_document_shares_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_document_shares_user_id'), ['user_id'], unique=False)

    op.create_table('stored_objects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('data_key_id', sa.Integer(), nullable=True),
    sa.Column('chunk_size', sa.Integer(), nullable=True),
    sa.Column('nonce_prefix', sa.LargeBinary(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(algorithm = 'none') = (data_key_id IS NULL)", name='ck_stored_objects_key'),
    sa.ForeignKeyConstraint(['data_key_id'], ['document_data_keys.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('stored_objects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stored_objects_data_key_id'), ['data_key_id'], unique=False)

    op.create_table('document_publications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('version_number', sa.Integer(), nullable=False),
    sa.Column('audience', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('instance_id')
    )
    with op.batch_alter_table('document_publications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_publications_document_id'), ['document_id'], unique=False)

    op.create_table('document_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('abstract', sa.Text(), nullable=False),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('business_type_id', sa.Integer(), nullable=True),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('document_date', sa.Date(), nullable=True),
    sa.Column('security_level', sa.SmallInteger(), nullable=False),
    sa.Column('change_note', sa.Text(), nullable=False),
    sa.Column('restored_from', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['business_type_id'], ['business_types.id'], ),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['object_id'], ['stored_objects.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('document_id', 'number', name='uq_document_versions_number')
    )
    with op.batch_alter_table('document_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_versions_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_document_versions_object_id'), ['object_id'], unique=False)

    _create_search_index()



SEARCH_COLUMNS = "title, abstract, keywords, body"


def _create_search_index() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(f"CREATE VIRTUAL TABLE document_fts USING fts5({SEARCH_COLUMNS}, content='document_search', "
                   "content_rowid='document_id', tokenize='unicode61')")
        new = "new.document_id, new.title, new.abstract, new.keywords, new.body"
        old = "'delete', old.document_id, old.title, old.abstract, old.keywords, old.body"
        insert = f"INSERT INTO document_fts(rowid, {SEARCH_COLUMNS}) VALUES ({new});"
        remove = f"INSERT INTO document_fts(document_fts, rowid, {SEARCH_COLUMNS}) VALUES ({old});"
        op.execute(f"CREATE TRIGGER document_search_ai AFTER INSERT ON document_search BEGIN {insert} END")
        op.execute(f"CREATE TRIGGER document_search_ad AFTER DELETE ON document_search BEGIN {remove} END")
        op.execute(f"CREATE TRIGGER document_search_au AFTER UPDATE ON document_search BEGIN {remove} {insert} END")
    elif dialect == "postgresql":
        op.execute(
            "ALTER TABLE document_search ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
            "setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', keywords), 'A') || "
            "setweight(to_tsvector('simple', abstract), 'B') || setweight(to_tsvector('simple', body), 'D')) STORED")
        op.execute("CREATE INDEX ix_document_search_tsv ON document_search USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("document_search_ai", "document_search_ad", "document_search_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS document_fts")
    with op.batch_alter_table('document_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_versions_object_id'))
        batch_op.drop_index(batch_op.f('ix_document_versions_document_id'))

    op.drop_table('document_versions')
    with op.batch_alter_table('document_publications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_publications_document_id'))

    op.drop_table('document_publications')
    with op.batch_alter_table('stored_objects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stored_objects_data_key_id'))

    op.drop_table('stored_objects')
    with op.batch_alter_table('document_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_shares_user_id'))
        batch_op.drop_index(batch_op.f('ix_document_shares_document_id'))
        batch_op.drop_index(batch_op.f('ix_document_shares_department_id'))

    op.drop_table('document_shares')
    op.drop_table('document_search')
    with op.batch_alter_table('document_data_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_data_keys_master_key_id'))

    op.drop_table('document_data_keys')
    op.drop_table('user_clearances')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_state'))
        batch_op.drop_index(batch_op.f('ix_documents_security_level'))
        batch_op.drop_index(batch_op.f('ix_documents_owner_id'))
        batch_op.drop_index(batch_op.f('ix_documents_document_date'))
        batch_op.drop_index(batch_op.f('ix_documents_department_id'))
        batch_op.drop_index(batch_op.f('ix_documents_created_at'))
        batch_op.drop_index(batch_op.f('ix_documents_business_type_id'))

    op.drop_table('documents')
    with op.batch_alter_table('business_types', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_business_types_parent_id'))

    op.drop_table('business_types')

"""Schema migrations run safely on upgrade (R-OPS-2): an empty database upgrades to head, the models
match what the migrations build, and every migration can be rolled back and applied again."""
from __future__ import annotations

import uuid

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from service.db import Base
from service.migrate import alembic_config, upgrade
from tests.conftest import PG_URL, USE_PG, _pg_url


def _fresh_engine(tmp_path):
    if not USE_PG:
        return create_engine(f"sqlite:///{tmp_path / 'migrate.db'}"), None
    schema = f"inkless_mig_{uuid.uuid4().hex[:10]}"
    base = _pg_url(PG_URL)
    admin = create_engine(base)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    return create_engine(f"{base}{sep}options=-csearch_path%3D{schema}"), (admin, schema)


def _model_differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diffs = compare_metadata(context, Base.metadata)
    # The full-text index is built by raw SQL in the documents migration, outside the models: SQLite's
    # FTS5 shadow tables (document_fts*) and PostgreSQL's generated tsvector column on document_search.
    return [d for d in diffs if "document_fts" not in str(d) and "'tsv'" not in str(d)
            and "ix_document_search_tsv" not in str(d)]


def test_empty_database_upgrades_and_matches_the_models_and_migrations_reverse(tmp_path):
    import service.documents.models  # noqa: F401 - the document tables are part of the schema

    engine, cleanup = _fresh_engine(tmp_path)
    try:
        upgrade(engine)
        assert _model_differences(engine) == []
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "base")
        with engine.connect() as connection:
            left = connection.execute(text("SELECT count(*) FROM alembic_version")).scalar()
        assert left == 0
        upgrade(engine)
        assert _model_differences(engine) == []
    finally:
        engine.dispose()
        if cleanup:
            admin, schema = cleanup
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

"""The document library (R-DOC-1 … R-DOC-5, R-SEC-3, R-SEC-4): documents with versioned metadata,
security levels enforced as mandatory access control, encryption at rest for 秘密 and above,
sharing, full-text search and publication.

`models` holds the tables, `storage` and `crypto` the blob store, `content` what a file is and
says, `search` the index, `access` who may do what, `library` the operations the API and the
publication procedure call. See docs/documents.md.
"""

"""A property-based run of schemathesis over the published OpenAPI document (issue 13): the real
server on a fresh SQLite database with demo data, once as a plain user and once as a system
administrator; any 5xx or any answer that does not match the document fails it.
Run with `make test-api-fuzz` (CI runs it after the SQLite suite)."""

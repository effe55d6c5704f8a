"""The designer's studio (R-WF-1, R-WF-4): a catalogue of process models per department, drafts
kept apart from deployed versions, validation, a sandboxed "try it", deployment as version N+1,
diffs between versions, migration of running instances, and zip packages.

Only designers of the owning department and system administrators change a model
(`catalogue.require_editor`); every other module here assumes that check was made.
"""

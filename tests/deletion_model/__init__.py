"""A model-based hunt for deletion bugs: random sources, faults and retries, then invariants.

``world.World`` builds a source (SQLite, PostgreSQL, MariaDB or a folder tree), a plan and
a ledger, runs the pipeline's phases in process with faults between them, and checks after
every step that nothing was deleted unless a verified copy was safely elsewhere.
"""

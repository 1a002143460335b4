"""The store: nas's own tables (``models``, versioned by ``migrations``) beside Optuna's in one SQL database,
and the one way to open it (``storage``: the URL, SQLite in WAL mode or PostgreSQL, sessions that commit or
roll back, weights files beside it, read-only engines for readers)."""

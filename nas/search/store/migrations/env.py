"""Alembic's environment for nas's own tables (``nas.search.store.migrations.upgrade`` runs it; no alembic.ini).

The connection comes from the caller; the version is kept in ``nas_alembic_version``, because Optuna keeps its
own in ``alembic_version`` in the same database.
"""

from alembic import context

from nas.search.store.migrations import VERSION_TABLE
from nas.search.store.models import Base

def _ours(obj, name, kind, reflected, compare_to):
    """Only nas's own tables: Optuna's, in the same database, are Optuna's to migrate."""
    return kind != "table" or name in Base.metadata.tables


context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata,
                  version_table=VERSION_TABLE, render_as_batch=True, include_object=_ours)
with context.begin_transaction():
    context.run_migrations()

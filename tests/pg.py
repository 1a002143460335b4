"""Fresh PostgreSQL databases for tests (dropped after); a clear skip where no server answers."""

import os
import uuid

import pytest
import sqlalchemy as sa

ADMIN_URL = os.environ.get("NAS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def fresh_database():
    """Yield the URL of a new, empty database; drop it afterwards."""
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server answers at {ADMIN_URL}: {str(exc.orig).splitlines()[0]}")
    name = f"nas_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

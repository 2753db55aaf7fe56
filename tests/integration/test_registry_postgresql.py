"""The registry service tests again, against a real PostgreSQL 15 server (tests/fixtures/postgres.py).

The test functions are the ones of tests/service/test_registry_*.py; only the database URL
differs: this module overrides the ``registry_database_url`` fixture.
"""

from __future__ import annotations

import pytest

from tests.service.test_registry_aliases import *  # noqa: F401,F403
from tests.service.test_registry_artifacts import (  # noqa: F401
    test_checksum_mismatch_is_data_loss_and_stores_nothing, test_upload_download_roundtrip,
)
from tests.service.test_registry_concurrency import *  # noqa: F401,F403
from tests.service.test_registry_iov import *  # noqa: F401,F403
from tests.service.test_registry_lineage_audit import *  # noqa: F401,F403
from tests.service.test_registry_permissions import *  # noqa: F401,F403
from tests.service.test_registry_versions import *  # noqa: F401,F403

pytestmark = pytest.mark.integration


@pytest.fixture
def registry_database_url(postgres_database: str) -> str:
    return postgres_database


def test_the_store_really_is_postgresql(postgres_database):
    from beamops.registry.store import Store

    store = Store(postgres_database)
    try:
        store.migrate()
        assert store.dialect == "postgresql"
        with store.engine.connect() as conn:
            tables = set(conn.exec_driver_sql(
                "select tablename from pg_tables where schemaname = 'public'").scalars())
        assert {"models", "parameters_versions", "aliases", "iov_entries", "audit_events",
                "model_permissions", "alembic_version"} <= tables
    finally:
        store.dispose()

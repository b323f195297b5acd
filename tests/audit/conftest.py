"""Fixtures: each store test runs on SQLite and on the real local PostgreSQL; the gateway fault tests reuse the
gateway tests' trained model (``weights``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from stores import db_url, pg_database, private_postgres, tiny_disk  # noqa: E402,F401 - fixtures

from tests.serve.server.conftest import weights  # noqa: E402,F401 - fixture

"""Fixtures: each registry test runs on SQLite and on the real local PostgreSQL (shared with tests/audit)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "audit"))

from stores import db_url, pg_database  # noqa: E402,F401 - fixtures

"""Consent scopes: for each data set, the purposes it may be used for, on which legal basis, until when.

A scope is one (data set, purpose) pair with its GDPR Art. 6(1) legal basis (``consent``, ``contract``,
``legal_obligation``, ``vital_interests``, ``public_task``, ``legitimate_interests``), the time it was granted and
an optional expiry. Withdrawing a scope ends it from that moment (the row stays, for the record). Every grant and
withdrawal is an audit event. Access checks (``modelshield.govern.access``) deny any use of a data set for a
purpose no active scope covers, and any use of a data set with no scope at all.

    with ConsentStore.open(db) as consent:
        consent.grant("*/data/incoming.csv", ["training", "evaluation"], "consent", expires=..., by="dpo")
        active = consent.scopes(active_at=now)   # what the DPIA and the access policy read
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from modelshield.core.errors import InputError
from modelshield.core.storage import write_transaction
from modelshield.govern.scopes import (
    AuditedRecords,
    DataTarget,
    check_purpose,
    check_ref,
    insert_row,
    iso,
    login,
    now_utc,
    parse_time,
    ref_matches,
)

LEGAL_BASES = ("consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests")
_LOCK = "modelshield-govern-consent"

metadata = sa.MetaData()
scopes_table = sa.Table(
    "govern_consent_scopes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.Text, nullable=False, index=True),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("legal_basis", sa.String(32), nullable=False),
    sa.Column("granted_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=True),
    sa.Column("recorded_by", sa.String(200), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("withdrawn_at", sa.String(40), nullable=True),
    sa.Column("withdrawn_by", sa.String(200), nullable=True),
)


@dataclass(frozen=True)
class ConsentScope:
    """One data set × purpose the data may be used for."""

    id: int
    dataset: str
    purpose: str
    legal_basis: str
    granted_at: datetime
    expires_at: datetime | None
    recorded_by: str
    note: str | None = None
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None

    def active(self, at: datetime) -> bool:
        """Granted by ``at``, not expired and not withdrawn by then."""
        if self.granted_at > at or (self.expires_at is not None and at >= self.expires_at):
            return False
        return self.withdrawn_at is None or at < self.withdrawn_at

    def state(self, at: datetime) -> str:
        if self.withdrawn_at is not None and at >= self.withdrawn_at:
            return "withdrawn"
        if self.expires_at is not None and at >= self.expires_at:
            return "expired"
        return "active" if self.granted_at <= at else "future"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "granted_at": iso(self.granted_at),
            "expires_at": iso(self.expires_at) if self.expires_at else None,
            "recorded_by": self.recorded_by,
            "note": self.note,
            "withdrawn_at": iso(self.withdrawn_at) if self.withdrawn_at else None,
            "withdrawn_by": self.withdrawn_by,
        }


def _scope(row: Any) -> ConsentScope:
    granted = parse_time(row.granted_at)
    assert granted is not None
    return ConsentScope(
        row.id,
        row.dataset,
        row.purpose,
        row.legal_basis,
        granted,
        parse_time(row.expires_at),
        row.recorded_by,
        row.note,
        parse_time(row.withdrawn_at),
        row.withdrawn_by,
    )


def covering(
    scopes: Iterable[ConsentScope], target: DataTarget, known: Mapping[str, frozenset[str]]
) -> list[ConsentScope]:
    """The scopes whose data-set reference names ``target``."""
    return [s for s in scopes if ref_matches(s.dataset, target, known)]


class ConsentStore(AuditedRecords):
    """Consent scopes in the shared store (SQLite by default, PostgreSQL by URL)."""

    component = "govern_consent"
    metadata = metadata

    def grant(
        self,
        dataset: str,
        purposes: Iterable[str],
        legal_basis: str,
        *,
        expires: datetime | None = None,
        by: str | None = None,
        note: str | None = None,
        now: datetime | None = None,
    ) -> list[ConsentScope]:
        """Record that ``dataset`` may be used for each of ``purposes`` on ``legal_basis`` (until ``expires``)."""
        when = now or now_utc()
        ref, wanted = check_ref(dataset), sorted({check_purpose(p) for p in purposes})
        if not wanted:
            raise InputError("name at least one purpose (--purpose training)")
        if legal_basis not in LEGAL_BASES:
            raise InputError(f"legal basis {legal_basis!r} is not one of {', '.join(LEGAL_BASES)} (GDPR Art. 6(1))")
        if expires is not None and expires <= when:
            raise InputError(f"the consent would expire at {iso(expires)}, before it is granted ({iso(when)})")
        who = by or login()
        rows = [
            {
                "dataset": ref,
                "purpose": p,
                "legal_basis": legal_basis,
                "granted_at": iso(when),
                "expires_at": iso(expires) if expires else None,
                "recorded_by": who,
                "note": note,
            }
            for p in wanted
        ]
        with write_transaction(self._engine, _LOCK) as conn:
            ids = [insert_row(conn, scopes_table, r) for r in rows]
        granted = self.scopes(ids=ids)
        self.record(
            "consent.grant",
            who,
            dataset=ref,
            purposes=wanted,
            legal_basis=legal_basis,
            expires_at=rows[0]["expires_at"],
            scope_ids=ids,
        )
        return granted

    def withdraw(self, scope_id: int, *, by: str | None = None, now: datetime | None = None) -> ConsentScope:
        """End scope ``scope_id`` now: from this moment no access may rely on it."""
        when = now or now_utc()
        who = by or login()
        with write_transaction(self._engine, _LOCK) as conn:
            row = conn.execute(sa.select(scopes_table).where(scopes_table.c.id == scope_id)).first()
            if row is None:
                raise InputError(f"no consent scope {scope_id}")
            if row.withdrawn_at is not None:
                raise InputError(f"consent scope {scope_id} was already withdrawn by {row.withdrawn_by}")
            conn.execute(
                scopes_table.update()
                .where(scopes_table.c.id == scope_id)
                .values(withdrawn_at=iso(when), withdrawn_by=who)
            )
        (scope,) = self.scopes(ids=[scope_id])
        self.record("consent.withdraw", who, scope_id=scope_id, dataset=scope.dataset, purposes=[scope.purpose])
        return scope

    def scopes(
        self, *, dataset: str | None = None, active_at: datetime | None = None, ids: Iterable[int] | None = None
    ) -> list[ConsentScope]:
        """The recorded scopes (of one data-set reference; only those active at ``active_at``), oldest first."""
        query = sa.select(scopes_table).order_by(scopes_table.c.id)
        if dataset is not None:
            query = query.where(scopes_table.c.dataset == dataset)
        if ids is not None:
            query = query.where(scopes_table.c.id.in_(list(ids)))
        with self._engine.connect() as conn:
            found = [_scope(r) for r in conn.execute(query)]
        return [s for s in found if active_at is None or s.active(active_at)]


__all__ = ["LEGAL_BASES", "ConsentScope", "ConsentStore", "covering"]

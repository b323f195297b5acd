"""Data processing agreements (GDPR Art. 28) for third-party data, mapped through lineage to the models using it.

A DPA record names the vendor, the data sets it supplies (references: see ``modelshield.govern.scopes``), the
purposes the data may be processed for, the processing terms and the period (signed → expires). ``dpa_models``
follows the supplied data sets' digests downstream in the lineage store to every registered model version made
from them, and lists each use of the vendor's data on the way to (and from) that version: the runs that read it,
with the purpose their job type stands for (``TRAIN`` → training, ``ASSESS``/``PRIVACY`` → evaluation, ``SERVE``
→ inference; ingest, registration and the other steps prepare data for those and carry no purpose of their own).
A model is flagged when a use's purpose is not one the DPA permits, or a use happened after the DPA expired (or
before it was signed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from modelshield.core.errors import InputError
from modelshield.core.storage import write_transaction
from modelshield.govern.scopes import (
    AuditedRecords,
    check_purpose,
    check_ref,
    insert_row,
    iso,
    lineage_digests,
    login,
    now_utc,
    parse_time,
)

if TYPE_CHECKING:
    from modelshield.govern.lineage import LineageStore, Node, RunNode

#: the purpose a lineage run's job type stands for (others are steps towards one of these)
JOB_PURPOSES = {"TRAIN": "training", "ASSESS": "evaluation", "PRIVACY": "evaluation", "SERVE": "inference"}
_LOCK = "modelshield-govern-dpa"

metadata = sa.MetaData()
dpas_table = sa.Table(
    "govern_dpas",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("vendor", sa.String(200), nullable=False, index=True),
    sa.Column("datasets", sa.Text, nullable=False),  # JSON list of references
    sa.Column("purposes", sa.Text, nullable=False),  # JSON list
    sa.Column("terms", sa.Text, nullable=False),
    sa.Column("signed_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=True),
    sa.Column("recorded_by", sa.String(200), nullable=False),
    sa.Column("recorded_at", sa.String(40), nullable=False),
)


@dataclass(frozen=True)
class Dpa:
    """One data processing agreement with a vendor of data."""

    id: int
    vendor: str
    datasets: tuple[str, ...]
    purposes: tuple[str, ...]
    terms: str
    signed_at: datetime
    expires_at: datetime | None
    recorded_by: str
    recorded_at: datetime

    def active(self, at: datetime) -> bool:
        return self.signed_at <= at and (self.expires_at is None or at < self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "vendor": self.vendor,
            "datasets": list(self.datasets),
            "purposes": list(self.purposes),
            "terms": self.terms,
            "signed_at": iso(self.signed_at),
            "expires_at": iso(self.expires_at) if self.expires_at else None,
            "recorded_by": self.recorded_by,
            "recorded_at": iso(self.recorded_at),
        }


def _dpa(row: Any) -> Dpa:
    signed, recorded = parse_time(row.signed_at), parse_time(row.recorded_at)
    assert signed is not None and recorded is not None
    return Dpa(
        row.id,
        row.vendor,
        tuple(json.loads(row.datasets)),
        tuple(json.loads(row.purposes)),
        row.terms,
        signed,
        parse_time(row.expires_at),
        row.recorded_by,
        recorded,
    )


class DpaStore(AuditedRecords):
    """DPA records in the shared store; each one recorded is an audit event."""

    component = "govern_dpa"
    metadata = metadata

    def add(
        self,
        vendor: str,
        datasets: Iterable[str],
        purposes: Iterable[str],
        *,
        terms: str,
        signed: datetime | None = None,
        expires: datetime | None = None,
        by: str | None = None,
        now: datetime | None = None,
    ) -> Dpa:
        """Record a DPA: ``vendor`` supplies ``datasets`` for ``purposes`` under ``terms``, ``signed`` → ``expires``."""
        when = now or now_utc()
        start = signed or when
        refs = tuple(dict.fromkeys(check_ref(d) for d in datasets))
        wanted = tuple(dict.fromkeys(check_purpose(p) for p in purposes))
        if not vendor.strip():
            raise InputError("name the vendor")
        if not refs or not wanted:
            raise InputError("a DPA names at least one data set the vendor supplies and one permitted purpose")
        if not terms.strip():
            raise InputError("a DPA needs its processing terms (or where they are: a contract reference)")
        if expires is not None and expires <= start:
            raise InputError(f"the DPA would expire at {iso(expires)}, before it is signed ({iso(start)})")
        who = by or login()
        values = {
            "vendor": vendor.strip(),
            "datasets": json.dumps(list(refs)),
            "purposes": json.dumps(list(wanted)),
            "terms": terms.strip(),
            "signed_at": iso(start),
            "expires_at": iso(expires) if expires else None,
            "recorded_by": who,
            "recorded_at": iso(when),
        }
        with write_transaction(self._engine, _LOCK) as conn:
            dpa_id = insert_row(conn, dpas_table, values)
        made = self.get(dpa_id)
        self.record("dpa.add", who, dpa_id=dpa_id, **{k: v for k, v in made.to_dict().items() if k != "id"})
        return made

    def get(self, dpa_id: int) -> Dpa:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(dpas_table).where(dpas_table.c.id == dpa_id)).first()
        if row is None:
            raise InputError(f"no DPA {dpa_id}")
        return _dpa(row)

    def dpas(self, *, vendor: str | None = None, active_at: datetime | None = None) -> list[Dpa]:
        """The recorded DPAs (of ``vendor``; in force at ``active_at``), oldest first."""
        query = sa.select(dpas_table).order_by(dpas_table.c.id)
        if vendor is not None:
            query = query.where(dpas_table.c.vendor == vendor)
        with self._engine.connect() as conn:
            found = [_dpa(r) for r in conn.execute(query)]
        return [d for d in found if active_at is None or d.active(active_at)]


# -- DPAs mapped to models ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Use:
    """A lineage run that used the vendor's data (directly, or through what was made from it)."""

    job: str
    job_type: str | None
    purpose: str | None
    time: str

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "job_type": self.job_type, "purpose": self.purpose, "time": self.time}


@dataclass
class ModelUse:
    """A registered model version made from a vendor's data, how it used the data, and what breaks the DPA."""

    model: str
    version: int
    digest: str | None
    uses: list[Use] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "digest": self.digest,
            "uses": [u.to_dict() for u in self.uses],
            "flags": list(self.flags),
        }


def _vendor_runs(node: Node, vendor: frozenset[str]) -> tuple[bool, list[RunNode]]:
    """Whether ``node``'s upstream reads vendor data, and the runs on the way that did (directly or not)."""
    reads, runs = False, []
    for run in node.produced_by:
        uses = False
        for child in run.inputs:
            inner, found = _vendor_runs(child, vendor)
            runs += found
            uses = uses or inner or child.dataset.digest in vendor
        if uses:
            runs.append(run)
            reads = True
    return reads, runs


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dpa_models(dpa: Dpa, lineage: LineageStore) -> list[ModelUse]:
    """Every registered model version lineage says was made from ``dpa``'s data sets, each with its uses of the
    data and flags: a purpose the DPA does not permit, a use after it expired or before it was signed."""
    from modelshield.govern.erasure import derived_from

    digests = {d for d in dpa.datasets if d.startswith("sha256:")}
    for found in lineage_digests(lineage.engine, dpa.datasets).values():
        digests |= found
    vendor = frozenset(digests)
    versions: dict[tuple[str, int], str | None] = {}
    for item in derived_from(lineage, sorted(vendor)):
        if (ref := item.registry_version) is not None:
            versions.setdefault(ref, item.digest)
    out = []
    for (model, version), digest in sorted(versions.items()):
        row = ModelUse(model, version, digest)
        runs: list[RunNode] = []
        if digest is not None:
            runs = _vendor_runs(lineage.upstream(digest), vendor)[1]
            runs += [r for r in lineage.downstream(digest) if r.job_type == "SERVE"]
        seen = set()
        for run in runs:
            if run.run_id not in seen:
                seen.add(run.run_id)
                kind = run.job_type
                row.uses.append(Use(run.job, kind, JOB_PURPOSES.get(kind or ""), run.event_time))
        row.uses.sort(key=lambda u: u.time)
        for use in row.uses:
            at = _when(use.time)
            if use.purpose is not None and use.purpose not in dpa.purposes:
                row.flags.append(
                    f"{use.job}: {use.purpose} is not a purpose the DPA permits ({', '.join(dpa.purposes)})"
                )
            if dpa.expires_at is not None and at >= dpa.expires_at:
                row.flags.append(f"{use.job}: used at {use.time}, after the DPA expired ({iso(dpa.expires_at)})")
            elif at < dpa.signed_at:
                row.flags.append(f"{use.job}: used at {use.time}, before the DPA was signed ({iso(dpa.signed_at)})")
        out.append(row)
    return out


__all__ = ["JOB_PURPOSES", "Dpa", "DpaStore", "ModelUse", "Use", "dpa_models"]

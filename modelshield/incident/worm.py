"""WORM audit storage: the log's signed checkpoints and the records between them, in an S3 Object Lock bucket.

The database's append-only triggers stop mistakes, not its owner; a copy under S3 Object Lock is one that no
account can change or delete before its retention date — not even the bucket owner in ``COMPLIANCE`` mode
(``GOVERNANCE`` lets holders of ``s3:BypassGovernanceRetention`` delete; a legal hold blocks deletion until it is
lifted, whatever the dates). A PUT to an existing key only adds a newer version: the locked one stays readable.

Layout under ``<prefix>/<log id>/``: ``segments/<first>-<last>.jsonl`` (the records as stored, one JSON line each)
then ``checkpoints/<seq>.json`` (the signed checkpoint over records 1..seq), segment first, so every stored
checkpoint has its records beside it. ``verify_worm`` reads only the first (locked) version of each object and
shows that the stored records rebuild the signed roots and still match the database.

Tested against moto's S3 server; boto3 is the AWS SDK, so any S3-compatible store with Object Lock (AWS S3,
MinIO, Ceph RGW) works the same way through ``endpoint_url``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from modelshield.audit import schema
from modelshield.audit.checkpoint import Checkpoint
from modelshield.audit.keys import key_id
from modelshield.audit.merkle import Frontier
from modelshield.core.errors import DependencyError, InputError, IntegrityError

S3Client = Any  # a boto3 S3 client (boto3 ships no type stubs)
Mode = Literal["COMPLIANCE", "GOVERNANCE"]
MODES = ("COMPLIANCE", "GOVERNANCE")


@dataclass(frozen=True)
class LockedObject:
    """One stored object version and the lock on it."""

    key: str
    version_id: str
    sha256: str
    mode: str | None
    retain_until: str | None
    legal_hold: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WormReport:
    """What ``verify_worm`` found: ``ok`` when nothing is wrong."""

    checkpoints: int = 0
    records: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.problems:
            more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            return f"TAMPERED: {self.problems[0]}{more}"
        return f"intact: {self.checkpoints} locked checkpoints and {self.records} locked records match the database"


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    """A boto3 S3 client (credentials from the usual AWS environment, profile or instance role)."""
    try:
        import boto3
    except ImportError:
        raise DependencyError("WORM storage needs boto3", hint="pip install 'modelshield[worm]'") from None
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1")


def _client_error() -> type[Exception]:
    from botocore.exceptions import ClientError

    return ClientError


class WormStore:
    """Audit objects in ``bucket`` (Object Lock enabled), each locked ``mode`` for ``retain_days``."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        prefix: str = "modelshield/audit",
        mode: Mode = "COMPLIANCE",
        retain_days: int = 365,
        legal_hold: bool = False,
    ) -> None:
        if mode not in MODES:
            raise InputError(f"Object Lock mode {mode!r} is not one of {', '.join(MODES)}")
        if retain_days < 1:
            raise InputError("retain_days must be at least 1")
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.mode, self.retain_days, self.legal_hold = mode, retain_days, legal_hold

    def create_bucket(self) -> None:
        """Create the bucket with Object Lock enabled (which also turns versioning on; it cannot be added later)."""
        self.client.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=True)

    def lock_configuration(self) -> dict[str, Any]:
        """The bucket's Object Lock configuration; refused when the bucket has no Object Lock."""
        try:
            config: dict[str, Any] = self.client.get_object_lock_configuration(Bucket=self.bucket)[
                "ObjectLockConfiguration"
            ]
        except _client_error() as exc:
            raise InputError(
                f"bucket {self.bucket} has no Object Lock configuration ({exc})",
                hint="create it with Object Lock enabled: modelshield incident worm put --create-bucket",
            ) from None
        if config.get("ObjectLockEnabled") != "Enabled":
            raise InputError(f"bucket {self.bucket} does not have Object Lock enabled")
        return config

    def default_retention_days(self) -> int | None:
        """The bucket's default retention in days (years counted as 365), or None when it has none."""
        rule = self.lock_configuration().get("Rule", {}).get("DefaultRetention")
        if not rule:
            return None
        return int(rule.get("Days") or 0) + 365 * int(rule.get("Years") or 0) or None

    def put(self, key: str, data: bytes) -> LockedObject:
        """Store ``data`` at ``key`` locked until now + ``retain_days``; an identical object already there is kept
        as it is, a different one is refused (it is evidence: it is never replaced)."""
        digest = hashlib.sha256(data).hexdigest()
        existing = self._first_version(key)
        if existing is not None:
            if existing.sha256 != digest:
                raise IntegrityError(f"{key} is already stored with different content (sha256 {existing.sha256[:16]}…)")
            return existing
        until = datetime.now(UTC) + timedelta(days=self.retain_days)
        extra: dict[str, Any] = {"ObjectLockLegalHoldStatus": "ON"} if self.legal_hold else {}
        done = self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ChecksumAlgorithm="SHA256",
            Metadata={"sha256": digest},
            ObjectLockMode=self.mode,
            ObjectLockRetainUntilDate=until,
            **extra,
        )
        return self.status(key, done["VersionId"])

    def status(self, key: str, version_id: str) -> LockedObject:
        """The lock on one version, as the store reports it now."""
        head = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        until = head.get("ObjectLockRetainUntilDate")
        return LockedObject(
            key,
            version_id,
            head.get("Metadata", {}).get("sha256", ""),
            head.get("ObjectLockMode"),
            until.astimezone(UTC).isoformat() if until else None,
            head.get("ObjectLockLegalHoldStatus") == "ON",
        )

    def read(self, key: str, version_id: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"].read()
        return body

    def versions(self, prefix: str) -> dict[str, list[str]]:
        """Every key under ``prefix`` and its version ids, oldest first (delete markers left out)."""
        found: dict[str, list[tuple[datetime, str]]] = {}
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for v in page.get("Versions", []):
                found.setdefault(v["Key"], []).append((v["LastModified"], v["VersionId"]))
        return {k: [vid for _, vid in sorted(vs)] for k, vs in sorted(found.items())}

    def _first_version(self, key: str) -> LockedObject | None:
        ids = self.versions(key).get(key)
        return self.status(key, ids[0]) if ids else None

    def log_prefix(self, log_id: str) -> str:
        return f"{self.prefix}/{log_id}"


def _log(engine: Engine) -> tuple[str, list[Checkpoint]]:
    with engine.connect() as conn:
        log_id = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "log_id")).scalar()
        rows = conn.execute(sa.select(schema.checkpoints).order_by(schema.checkpoints.c.seq)).all()
    if log_id is None:
        raise InputError("the database holds no audit log")
    return log_id, [Checkpoint(log_id, r.seq, r.created_at, r.root, r.key_id, r.signature) for r in rows]


def _segment(engine: Engine, first: int, last: int) -> bytes:
    query = (
        sa.select(schema.records)
        .where(schema.records.c.seq >= first, schema.records.c.seq <= last)
        .order_by(schema.records.c.seq)
    )
    out = []
    with engine.connect() as conn:
        for r in conn.execution_options(yield_per=5_000).execute(query):
            doc = {
                "seq": r.seq,
                "recorded_at": r.recorded_at,
                "event": r.event,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
            out.append(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n")
    if len(out) != last - first + 1:
        raise IntegrityError(
            f"audit records {first}..{last} are not all in the database", hint="modelshield audit verify"
        )
    return b"".join(out)


def archive_log(engine: Engine, store: WormStore) -> list[LockedObject]:
    """Lock every checkpoint not yet stored, each after the segment of records it adds; returns what was stored."""
    log_id, cps = _log(engine)
    base = store.log_prefix(log_id)
    stored = {int(k.rsplit("/", 1)[1].removesuffix(".json")) for k in store.versions(f"{base}/checkpoints/")}
    written = []
    previous = 0
    for cp in cps:
        if cp.seq not in stored and cp.seq > previous:
            segment = _segment(engine, previous + 1, cp.seq)
            written.append(store.put(f"{base}/segments/{previous + 1:012d}-{cp.seq:012d}.jsonl", segment))
            body = json.dumps(cp.to_json(), sort_keys=True, separators=(",", ":")).encode("utf-8")
            written.append(store.put(f"{base}/checkpoints/{cp.seq:012d}.json", body))
        previous = max(previous, cp.seq)
    return written


def locked_checkpoints(engine: Engine, store: WormStore) -> int:
    """How many of the log's checkpoints the bucket holds (for the readiness check)."""
    log_id, _ = _log(engine)
    return len(store.versions(f"{store.log_prefix(log_id)}/checkpoints/"))


def _locked(obj: LockedObject) -> bool:
    if obj.legal_hold:
        return True
    return (
        obj.mode in MODES
        and obj.retain_until is not None
        and datetime.fromisoformat(obj.retain_until) > datetime.now(UTC)
    )


def verify_worm(engine: Engine, store: WormStore, public_key: Ed25519PublicKey) -> WormReport:
    """Check the locked copy: each object's first version still locked and unchanged (a later version is an
    attempted overwrite), checkpoint signatures, segments that rebuild each signed root, and the database's
    records and checkpoints still equal to the locked ones (an edit or deletion there is reported)."""
    report = WormReport()
    log_id, db_cps = _log(engine)
    base = store.log_prefix(log_id)
    in_db = {cp.seq: cp for cp in db_cps}
    objects = store.versions(f"{base}/")
    cps: dict[int, Checkpoint] = {}
    segments: list[tuple[int, bytes]] = []
    for key, ids in objects.items():
        if len(ids) > 1:
            report.problems.append(
                f"{key} has {len(ids)} versions: a later write tried to replace it (the first is used)"
            )
        obj = store.status(key, ids[0])
        data = store.read(key, ids[0])
        if hashlib.sha256(data).hexdigest() != obj.sha256:
            report.problems.append(f"{key}: content does not match the digest stored with it")
        if not _locked(obj):
            report.problems.append(f"{key} is no longer locked (retention expired or never set)")
        name = key.rsplit("/", 1)[1]
        if "/checkpoints/" in key:
            doc = json.loads(data)
            cps[int(doc["seq"])] = Checkpoint(**doc)
        elif "/segments/" in key:
            segments.append((int(name.split("-")[0]), data))
    for seq, cp in sorted(cps.items()):
        if cp.key_id != key_id(public_key) or not cp.signature_valid(public_key):
            report.problems.append(f"locked checkpoint {seq}: signature does not verify with the given public key")
        db_cp = in_db.get(seq)
        if db_cp is None:
            report.problems.append(f"checkpoint {seq} is locked in the bucket but missing from the database (deleted)")
        elif (db_cp.root, db_cp.signature) != (cp.root, cp.signature):
            report.problems.append(f"checkpoint {seq} in the database differs from the locked copy (replaced)")
    report.checkpoints = len(cps)
    _replay(engine, sorted(segments), cps, report)
    return report


def _replay(engine: Engine, segments: list[tuple[int, bytes]], cps: dict[int, Checkpoint], report: WormReport) -> None:
    """Re-hash the locked records in order, compare each signed root, and compare with the database's hashes."""
    frontier, prev = Frontier(), schema.GENESIS.hex()
    for first, data in segments:
        if first != frontier.size + 1:
            report.problems.append(f"locked records jump from {frontier.size} to {first} (a segment is missing)")
            return
        rows = [json.loads(line) for line in data.splitlines()]
        with engine.connect() as conn:
            stored = dict(
                conn.execute(
                    sa.select(schema.records.c.seq, schema.records.c.hash).where(
                        schema.records.c.seq >= first, schema.records.c.seq < first + len(rows)
                    )
                ).all()
            )
        for r in rows:
            digest = schema.record_hash(bytes.fromhex(r["prev_hash"]), r["seq"], r["recorded_at"], r["event"].encode())
            if r["seq"] != frontier.size + 1 or r["prev_hash"] != prev or digest.hex() != r["hash"]:
                report.problems.append(f"locked record {r['seq']} does not chain to the one before it")
                return
            if stored.get(r["seq"]) != r["hash"]:
                what = "missing from" if r["seq"] not in stored else "different in"
                report.problems.append(f"record {r['seq']} is {what} the database (the locked copy holds the original)")
            frontier.append(digest)
            prev = r["hash"]
            cp = cps.get(frontier.size)
            if cp is not None and frontier.root().hex() != cp.root:
                report.problems.append(f"locked records 1..{cp.seq} do not hash to the locked checkpoint's root")
        report.records = frontier.size

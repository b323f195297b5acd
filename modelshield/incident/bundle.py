"""Evidence bundles: one signed tar archive that proves, offline, what the audit log said about an incident.

The archive (uncompressed POSIX ustar, written deterministically) holds, in this order::

    manifest.json                 what follows, each member's SHA-256 and size, the slice and the checkpoints
    manifest.sig                  Ed25519 over DSSE PAE(PAYLOAD_TYPE, manifest.json)
    audit/checkpoint.json         the signed checkpoint every proof is checked against
    audit/earlier-checkpoint.json an earlier signed checkpoint (when the log has one) ...
    audit/consistency.json        ... and the RFC 9162 proof that it is a prefix of the current one
    audit/records.jsonl           the slice: each record as stored, with its RFC 9162 inclusion proof
    audit/alerts.jsonl            every alert record (security.* actions, "flag" decisions) up to the
                                  checkpoint, each with its inclusion proof
    models/..., data/..., configs/..., logs/...  registry versions with their signatures, data digests,
                                  configuration files and gateway logs (the last two masked)

``verify_bundle`` needs nothing but the file and the public key: it checks the manifest signature, every
member's digest, that the archive is byte for byte the canonical encoding of its members (so an edit in a tar
header or padding is refused too), both checkpoint signatures, the consistency proof, every record's chain hash
and inclusion proof, and the model signature envelopes. Why a tar and not a folder or a zip: one file is what
gets attached to a ticket or handed to counsel; tar is readable by every system's own tools
(``tar -xf bundle.tar``) and, unlike zip, has no second directory that can disagree with the members.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy.engine import Engine

import modelshield
from modelshield.audit import schema
from modelshield.audit.checkpoint import Checkpoint
from modelshield.audit.keys import key_id
from modelshield.audit.merkle import MerkleTree, Proven, verify_consistency, verify_inclusion
from modelshield.core.errors import InputError, IntegrityError, ModelShieldError
from modelshield.integrity.provenance import hash_tree
from modelshield.integrity.signing.dsse import Envelope, pae
from modelshield.integrity.signing.keys import verify_bytes
from modelshield.registry.store import ModelVersion

FORMAT = "modelshield-incident-bundle/1"
PAYLOAD_TYPE = "application/vnd.modelshield.incident-manifest+json"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_NAME = 100  # ustar's name field: members never need the PAX extension, so headers stay canonical
MAX_MEMBERS = 10_000
_ALERT_PREFILTER = sa.or_(
    schema.records.c.event.like('%"action":"security.%'), schema.records.c.event.like('%"decision":"flag"%')
)

Masker = Callable[[Any], Any]


@dataclass(frozen=True)
class Member:
    """One archive member: its name, what it holds, and its bytes."""

    name: str
    kind: str
    data: bytes

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "size": len(self.data),
        }


@dataclass(frozen=True)
class BundleSummary:
    """What ``build_bundle`` wrote."""

    path: Path
    first_seq: int
    last_seq: int
    records: int
    alerts: int
    checkpoint_seq: int
    earlier_seq: int | None
    members: int
    size: int


def is_alert(event: Mapping[str, Any]) -> bool:
    """Alert records: security events the gateway writes (``security.*``) and anything it flagged."""
    action = event.get("action")
    return (isinstance(action, str) and action.startswith("security.")) or event.get("decision") == "flag"


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, indent=2).encode("utf-8") + b"\n"


def _checkpoints(engine: Engine) -> tuple[str, list[Checkpoint]]:
    with engine.connect() as conn:
        log_id = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "log_id")).scalar()
        rows = conn.execute(sa.select(schema.checkpoints).order_by(schema.checkpoints.c.seq)).all()
    if log_id is None:
        raise InputError("the database holds no audit log (audit_meta.log_id is missing)")
    return log_id, [Checkpoint(log_id, r.seq, r.created_at, r.root, r.key_id, r.signature) for r in rows]


def _tree(engine: Engine, size: int) -> MerkleTree:
    """The Merkle tree over records 1..size, as stored (the checkpoint's root must match it)."""
    query = sa.select(schema.records.c.seq, schema.records.c.hash).where(schema.records.c.seq <= size)
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=10_000).execute(query.order_by(schema.records.c.seq))
        hashes = []
        for expected, row in enumerate(rows, 1):
            if row.seq != expected:
                raise IntegrityError(f"audit record {expected} is missing", hint="run: modelshield audit verify")
            hashes.append(bytes.fromhex(row.hash))
    if len(hashes) != size:
        raise IntegrityError(f"the checkpoint covers {size} records but the log holds {len(hashes)}")
    return MerkleTree(hashes)


def _record_lines(engine: Engine, where: Any, tree: MerkleTree, alerts_only: bool = False) -> Iterator[bytes]:
    """Records matching ``where``, each re-hashed, as JSON lines with their inclusion proofs in ``tree``.

    The line is written by hand (keys in sorted order, as ``json.dumps(sort_keys=True)`` would): at 100k records
    the generic encoder was a third of the build time."""
    query = sa.select(schema.records).where(where).order_by(schema.records.c.seq)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=5_000).execute(query):
            if alerts_only and not is_alert(json.loads(row.event)):
                continue
            actual = schema.record_hash(bytes.fromhex(row.prev_hash), row.seq, row.recorded_at, row.event.encode())
            if actual.hex() != row.hash:
                raise IntegrityError(
                    f"audit record {row.seq} does not match its hash", hint="run: modelshield audit verify"
                )
            proof = ",".join(f'"{p.hex()}"' for p in tree.inclusion_proof(row.seq - 1))
            yield (
                f'{{"event":{json.dumps(row.event)},"hash":"{row.hash}","prev_hash":"{row.prev_hash}",'
                f'"proof":[{proof}],"recorded_at":{int(row.recorded_at)},"seq":{int(row.seq)}}}\n'
            ).encode("ascii")


def _slice_bounds(
    engine: Engine, size: int, from_seq: int | None, to_seq: int | None, since_us: int | None, until_us: int | None
) -> tuple[int, int]:
    """First and last seq of the slice: a seq range, a time range (recorded_at, microseconds), or both."""
    conditions = [schema.records.c.seq <= size]
    if from_seq is not None:
        conditions.append(schema.records.c.seq >= from_seq)
    if to_seq is not None:
        conditions.append(schema.records.c.seq <= to_seq)
    if since_us is not None:
        conditions.append(schema.records.c.recorded_at >= since_us)
    if until_us is not None:
        conditions.append(schema.records.c.recorded_at <= until_us)
    query = sa.select(sa.func.min(schema.records.c.seq), sa.func.max(schema.records.c.seq)).where(*conditions)
    with engine.connect() as conn:
        first, last = conn.execute(query).one()
    if first is None:
        raise InputError(f"no audit records in the range asked for among records 1..{size} covered by the checkpoint")
    return int(first), int(last)


def _model_members(index: int, mv: ModelVersion) -> list[Member]:
    """A registry version, its digest re-computed now, and its signature with the key, checked at build time."""
    from modelshield.integrity.signing import verify_model

    stem = f"models/{index:03d}-{mv.name}-v{mv.version}"
    record: dict[str, Any] = {"registry": mv.to_dict()}
    path = Path(mv.path)
    record["digest_now"] = hash_tree(path).digest if path.exists() else None
    members = []
    sig = Path(mv.signature_path) if mv.signature_path else None
    key = Path(mv.public_key) if mv.public_key else None
    if sig is not None and key is not None and sig.is_file() and key.is_file():
        try:
            verify_model(path, key, sig)
            record["signature_at_build"] = "verified"
        except ModelShieldError as exc:  # the outcome is evidence, whatever it was
            record["signature_at_build"] = f"failed: {exc}"
        members += [Member(f"{stem}.sig", "model-signature", sig.read_bytes())]
        members += [Member(f"{stem}.pub.pem", "model-key", key.read_bytes())]
        record["signature_member"], record["public_key_member"] = members[0].name, members[1].name
    else:
        record["signature_at_build"] = "unsigned" if sig is None else "signature or key file missing"
    return [Member(f"{stem}.json", "model", _json(record)), *members]


def _masked_lines(data: bytes, mask: Masker) -> bytes:
    """Each line masked: JSON lines field by field (so a ``token`` field is redacted), other lines as text."""
    out = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            out.append(str(mask(line)))
            continue
        out.append(json.dumps(mask(doc), ensure_ascii=False, separators=(",", ":")))
    return "".join(f"{line}\n" for line in out).encode("utf-8")


def _file_members(kind: str, folder: str, paths: Sequence[Path], mask: Masker) -> list[Member]:
    members = []
    for i, p in enumerate(paths):
        if not p.is_file():
            raise InputError(f"{kind} file {p} does not exist")
        members.append(Member(f"{folder}/{i:03d}-{p.name}"[:MAX_NAME], kind, _masked_lines(p.read_bytes(), mask)))
    return members


def build_bundle(
    engine: Engine,
    out: Path,
    key: Ed25519PrivateKey,
    *,
    checkpoint_key: Ed25519PublicKey | None = None,
    from_seq: int | None = None,
    to_seq: int | None = None,
    since_us: int | None = None,
    until_us: int | None = None,
    earlier_seq: int | None = None,
    models: Sequence[ModelVersion] = (),
    data: Sequence[Path] = (),
    configs: Sequence[Path] = (),
    gateway_logs: Sequence[Path] = (),
    mask: Masker | None = None,
    note: str = "",
) -> BundleSummary:
    """Write the evidence bundle for the audit records in the range asked for to ``out`` (a .tar), signed with ``key``.

    The proofs are against the log's latest signed checkpoint, which must cover the slice (sign one first:
    ``modelshield audit checkpoint``) and must verify with ``checkpoint_key`` (default: ``key``'s public half);
    the log's records must match it, or nothing is written. ``mask`` (the gateway's ``Masker().mask``) is
    applied to configs and gateway logs; it is required when there are any.
    """
    if (configs or gateway_logs) and mask is None:
        raise InputError("configs and gateway logs go into a bundle masked: pass a masking function")
    cp_key = checkpoint_key or key.public_key()
    log_id, cps = _checkpoints(engine)
    if not cps:
        raise InputError(
            "the audit log has no signed checkpoint", hint="sign one: modelshield audit checkpoint --key KEY"
        )
    current = cps[-1]
    if current.key_id != key_id(cp_key) or not current.signature_valid(cp_key):
        raise IntegrityError(f"the latest checkpoint (seq {current.seq}) does not verify with the checkpoint key")
    first, last = _slice_bounds(engine, current.seq, from_seq, to_seq, since_us, until_us)
    if to_seq is not None and to_seq > current.seq:
        raise InputError(
            f"records up to {to_seq} were asked for but the latest checkpoint covers 1..{current.seq}",
            hint="sign a checkpoint first: modelshield audit checkpoint (or --sign-checkpoint)",
        )
    tree = _tree(engine, current.seq)
    if tree.root().hex() != current.root:
        raise IntegrityError(
            f"records 1..{current.seq} do not hash to the signed checkpoint root", hint="run: modelshield audit verify"
        )
    members = [Member("audit/checkpoint.json", "checkpoint", _json(current.to_json()))]
    earlier = _earlier(cps, current, first, earlier_seq)
    if earlier is not None:
        if earlier.key_id != key_id(cp_key) or not earlier.signature_valid(cp_key):
            raise IntegrityError(f"the earlier checkpoint (seq {earlier.seq}) does not verify with the checkpoint key")
        proof = [p.hex() for p in tree.consistency_proof(earlier.seq)] if earlier.seq < current.seq else []
        members.append(Member("audit/earlier-checkpoint.json", "earlier-checkpoint", _json(earlier.to_json())))
        consistency = {"old_size": earlier.seq, "new_size": current.seq, "proof": proof}
        members.append(Member("audit/consistency.json", "consistency", _json(consistency)))
    in_slice = sa.and_(schema.records.c.seq >= first, schema.records.c.seq <= last)
    records = list(_record_lines(engine, in_slice, tree))
    members.append(Member("audit/records.jsonl", "records", b"".join(records)))
    covered = sa.and_(schema.records.c.seq <= current.seq, _ALERT_PREFILTER)
    alerts = list(_record_lines(engine, covered, tree, alerts_only=True))
    members.append(Member("audit/alerts.jsonl", "alerts", b"".join(alerts)))
    for i, mv in enumerate(models):
        members += _model_members(i, mv)
    if data:
        digests = []
        for p in data:
            d = hash_tree(p)
            digests.append({"path": str(Path(p).absolute()), "digest": d.digest, "size": d.size, "files": d.files})
        members.append(Member("data/digests.json", "data", _json(digests)))
    if mask is not None:
        members += _file_members("config", "configs", configs, mask)
        members += _file_members("log", "logs", gateway_logs, mask)
    now = datetime.now(UTC)
    manifest = {
        "format": FORMAT,
        "created_at": now.isoformat(timespec="seconds"),
        "tool": f"modelshield {modelshield.__version__}",
        "note": note,
        "log_id": log_id,
        "slice": {"first_seq": first, "last_seq": last, "records": len(records)},
        "alerts": len(alerts),
        "checkpoint": {"seq": current.seq, "root": current.root, "key_id": current.key_id},
        "earlier_checkpoint": None if earlier is None else {"seq": earlier.seq, "root": earlier.root},
        "members": [m.entry() for m in members],
    }
    manifest_bytes = _json(manifest)
    signature = {
        "payloadType": PAYLOAD_TYPE,
        "keyid": key_id(key.public_key()),
        "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, manifest_bytes))).decode("ascii"),
    }
    everything = [Member(MANIFEST, "manifest", manifest_bytes), Member(SIGNATURE, "signature", _json(signature))]
    everything += members
    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tmp.open("wb") as f:
            _write_tar(f, everything, int(now.timestamp()))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)  # only left when writing failed (a full disk): no half bundle stays behind
    return BundleSummary(
        out,
        first,
        last,
        len(records),
        len(alerts),
        current.seq,
        None if earlier is None else earlier.seq,
        len(everything),
        out.stat().st_size,
    )


def _earlier(cps: list[Checkpoint], current: Checkpoint, first: int, wanted: int | None) -> Checkpoint | None:
    """The checkpoint to prove consistency from: the one asked for, else the latest before the slice starts,
    else the oldest one before the current checkpoint; None when the log has only one."""
    if wanted is not None:
        chosen = next((cp for cp in cps if cp.seq == wanted), None)
        if chosen is None or chosen.seq > current.seq:
            raise InputError(f"the audit log has no checkpoint at seq {wanted} at or below {current.seq}")
        return chosen
    older = [cp for cp in cps if cp.seq < current.seq]
    before = [cp for cp in older if cp.seq < first]
    return before[-1] if before else (older[0] if older else None)


def _write_tar(f: IO[bytes], members: Sequence[Member], mtime: int) -> None:
    """The canonical encoding: ustar headers with fixed owner, mode and time, members in the given order."""
    with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.size, info.mtime, info.mode = len(m.data), mtime, 0o644
            tar.addfile(info, io.BytesIO(m.data))


# -- verification ----------------------------------------------------------------------------------------------


@dataclass
class BundleReport:
    """The verdict on a bundle: ``ok`` when every check passed; ``problems`` as (check, what failed)."""

    path: str
    checks: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    records: int = 0
    alerts: int = 0
    checkpoint_seq: int | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.checks)

    def fail(self, check: str, message: str) -> None:
        self.checks[check] = "failed"
        if len(self.problems) < 50:
            self.problems.append((check, message))

    def passed(self, check: str) -> None:
        self.checks.setdefault(check, "ok")

    def summary(self) -> str:
        if self.problems:
            check, message = self.problems[0]
            more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            return f"REFUSED [{check}]: {message}{more}"
        return (
            f"verified: records {self.first_seq}..{self.last_seq} ({self.records}) and {self.alerts} alerts proven "
            f"against the signed checkpoint at seq {self.checkpoint_seq}; {len(self.checks)} checks passed"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "checks": self.checks,
            "problems": [{"check": c, "message": m} for c, m in self.problems],
            "records": self.records,
            "alerts": self.alerts,
            "checkpoint_seq": self.checkpoint_seq,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "notes": self.notes,
        }


def _read_members(path: Path, report: BundleReport) -> list[Member] | None:
    """Every member of the archive, refusing anything but uniquely named regular files."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            members: list[Member] = []
            seen: set[str] = set()
            for info in tar:
                if len(members) >= MAX_MEMBERS:
                    report.fail("archive", f"more than {MAX_MEMBERS} members")
                    return None
                if not info.isfile() or info.issparse():  # a sparse member could expand past the file's size
                    report.fail("archive", f"member {info.name!r} is not a regular file")
                    return None
                if info.name in seen:
                    report.fail("archive", f"member {info.name!r} appears twice")
                    return None
                seen.add(info.name)
                handle = tar.extractfile(info)
                assert handle is not None  # a regular file always has one
                members.append(Member(info.name, "", handle.read()))
    except (tarfile.TarError, OSError, EOFError) as exc:
        report.fail("archive", f"not a readable tar archive ({exc})")
        return None
    report.passed("archive")
    return members


def _check_signature(members: dict[str, Member], public_key: Ed25519PublicKey, report: BundleReport) -> Any:
    """The manifest, parsed, if its signature verifies; None otherwise."""
    manifest, sig = members.get(MANIFEST), members.get(SIGNATURE)
    if manifest is None or sig is None:
        report.fail("manifest-signature", f"the bundle has no {MANIFEST if manifest is None else SIGNATURE}")
        return None
    try:
        doc = json.loads(sig.data)
        raw = base64.b64decode(doc["sig"], validate=True)
        kind, keyid = doc["payloadType"], doc["keyid"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        report.fail("manifest-signature", f"{SIGNATURE} is malformed")
        return None
    if keyid != key_id(public_key):
        report.fail("manifest-signature", f"the manifest is signed by key {str(keyid)[:16]}…, not the given public key")
        return None
    if kind != PAYLOAD_TYPE or not verify_bytes(public_key, raw, pae(PAYLOAD_TYPE, manifest.data)):
        report.fail("manifest-signature", "the manifest signature does not verify (manifest or signature edited)")
        return None
    report.passed("manifest-signature")
    try:
        return json.loads(manifest.data)
    except ValueError:  # signed but not JSON: not something this tool wrote
        report.fail("manifest", "the signed manifest is not JSON")
        return None


def _check_members(
    members: list[Member], manifest: Any, report: BundleReport
) -> tuple[dict[str, Member], str | None] | None:
    """Every listed member present with its digest and size, none added; with them in the manifest's order, the
    SHA-256 of their canonical archive (which the file must equal)."""
    try:
        listed = [(e["name"], e["kind"], e["sha256"], e["size"]) for e in manifest["members"]]
        mtime = int(datetime.fromisoformat(manifest["created_at"]).timestamp())
    except (KeyError, TypeError, ValueError):
        report.fail("manifest", "the manifest does not list its members as this format does")
        return None
    if manifest.get("format") != FORMAT:
        report.fail("manifest", f"format {manifest.get('format')!r} is not {FORMAT}")
        return None
    present = {m.name: m for m in members}
    names = [name for name, *_ in listed]
    for name in sorted(set(present) - set(names) - {MANIFEST, SIGNATURE}):
        report.fail("members", f"member {name} is not in the manifest (added)")
    kinds: dict[str, Member] = {}
    for name, kind, digest, size in listed:
        m = present.get(name)
        if m is None:
            report.fail("members", f"member {name} listed in the manifest is missing (removed)")
            continue
        if len(m.data) != size or hashlib.sha256(m.data).hexdigest() != digest:
            report.fail("members", f"member {name} does not match its manifest digest (edited)")
            continue
        kinds[name] = Member(name, kind, m.data)
    if "members" in report.checks:
        return None
    report.passed("members")
    expected = [MANIFEST, SIGNATURE, *names]
    if [m.name for m in members] != expected:
        report.fail("archive-encoding", "members are not in the manifest's order (archive rearranged)")
        return kinds, None
    rebuilt = _Digest()
    _write_tar(rebuilt, [present[MANIFEST], present[SIGNATURE], *kinds.values()], mtime)  # type: ignore[arg-type]
    return kinds, rebuilt.hexdigest()


class _Digest(io.RawIOBase):
    """A write-only file that only hashes what is written (the canonical archive, for comparison)."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._at = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def write(self, b: Any) -> int:
        self._h.update(b)
        self._at += len(b)
        return len(b)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _load_checkpoint(member: Member | None, what: str, report: BundleReport) -> Checkpoint | None:
    if member is None:
        report.fail(what, f"the bundle has no {what}")
        return None
    try:
        doc = json.loads(member.data)
        cp = Checkpoint(**{k: doc[k] for k in ("log_id", "seq", "created_at", "root", "key_id", "signature")})
    except (ValueError, KeyError, TypeError):
        report.fail(what, f"{member.name} is not a checkpoint")
        return None
    return cp


def _check_checkpoints(
    kinds: dict[str, Member], manifest: Any, cp_key: Ed25519PublicKey, report: BundleReport
) -> Checkpoint | None:
    by_kind = {m.kind: m for m in kinds.values()}
    current = _load_checkpoint(by_kind.get("checkpoint"), "checkpoint-signature", report)
    if current is None:
        return None
    if current.key_id != key_id(cp_key) or not current.signature_valid(cp_key):
        report.fail("checkpoint-signature", f"the checkpoint at seq {current.seq} is not signed by the checkpoint key")
        return None
    named = manifest.get("checkpoint") if isinstance(manifest.get("checkpoint"), dict) else {}
    if (current.seq, current.root, current.log_id) != (named.get("seq"), named.get("root"), manifest.get("log_id")):
        report.fail("checkpoint-signature", "the checkpoint is not the one the manifest names")
        return None
    report.passed("checkpoint-signature")
    report.checkpoint_seq = current.seq
    if "earlier-checkpoint" not in by_kind:
        report.notes.append("no earlier checkpoint in the bundle: consistency not proven (the log had one checkpoint)")
        return current
    earlier = _load_checkpoint(by_kind.get("earlier-checkpoint"), "consistency", report)
    if earlier is None:
        return current
    if earlier.log_id != current.log_id or earlier.key_id != key_id(cp_key) or not earlier.signature_valid(cp_key):
        report.fail("consistency", f"the earlier checkpoint at seq {earlier.seq} is not signed by the checkpoint key")
        return current
    proof_member = by_kind.get("consistency")
    try:
        doc = json.loads(proof_member.data) if proof_member else None
        proof = [bytes.fromhex(p) for p in doc["proof"]]  # type: ignore[index]
        sizes = (doc["old_size"], doc["new_size"])  # type: ignore[index]
    except (ValueError, KeyError, TypeError):
        report.fail("consistency", "the consistency proof is missing or malformed")
        return current
    ok = sizes == (earlier.seq, current.seq) and verify_consistency(
        earlier.seq, current.seq, bytes.fromhex(earlier.root), bytes.fromhex(current.root), proof
    )
    if not ok:
        report.fail("consistency", f"checkpoint {earlier.seq} is not proven a prefix of checkpoint {current.seq}")
    else:
        report.passed("consistency")
    return current


def _check_records(
    member: Member, cp: Checkpoint, check: str, report: BundleReport, chained: bool, proven: Proven
) -> list[int]:
    """Each record's chain hash and inclusion proof against ``cp``; with ``chained``, consecutive and linked.
    ``proven`` is shared by every proof against ``cp`` (see ``audit.merkle.verify_inclusion``)."""
    root = bytes.fromhex(cp.root)
    seqs: list[int] = []
    prev_hash: str | None = None
    for n, line in enumerate(member.data.splitlines(), 1):
        try:
            r = json.loads(line)
            seq, event, proof = int(r["seq"]), str(r["event"]).encode("utf-8"), [bytes.fromhex(p) for p in r["proof"]]
            digest = schema.record_hash(bytes.fromhex(r["prev_hash"]), seq, int(r["recorded_at"]), event)
        except (ValueError, KeyError, TypeError, OverflowError):
            report.fail(check, f"{member.name} line {n} is not a record with a proof")
            return seqs
        if digest.hex() != r["hash"]:
            report.fail(check, f"record {seq}: content does not match its hash")
        elif not verify_inclusion(digest, seq - 1, cp.seq, proof, root, proven):
            report.fail(check, f"record {seq}: inclusion proof does not lead to the checkpoint root")
        if seqs and seq <= seqs[-1]:
            report.fail(check, f"record {seq} follows record {seqs[-1]} (records reordered or repeated)")
        if chained and seqs and (seq != seqs[-1] + 1 or r["prev_hash"] != prev_hash):
            report.fail(check, f"record {seq} does not link to the record before it (records reordered or removed)")
        seqs.append(seq)
        prev_hash = r["hash"]
    if check not in report.checks:
        report.passed(check)
    return seqs


def _check_model_signatures(kinds: dict[str, Member], report: BundleReport) -> None:
    """Each bundled model signature envelope verifies with the bundled key (the model file itself is not here)."""
    for m in kinds.values():
        if m.kind != "model":
            continue
        try:
            doc = json.loads(m.data)
        except ValueError:
            report.fail("model-signatures", f"{m.name} is not JSON")
            continue
        if not isinstance(doc, dict) or "signature_member" not in doc:
            continue
        sig, key = kinds.get(str(doc["signature_member"])), kinds.get(str(doc.get("public_key_member")))
        try:
            envelope = Envelope.from_json(json.loads(sig.data)["dsseEnvelope"])  # type: ignore[union-attr]
            public = load_pem_public_key(key.data)  # type: ignore[union-attr]
        except (AttributeError, ValueError, KeyError, TypeError, IntegrityError):
            report.fail("model-signatures", f"{m.name}: its signature or public key is missing or malformed")
            continue
        signed = pae(envelope.payload_type, envelope.payload)
        if not envelope.signatures or not all(verify_bytes(public, s, signed) for s, _ in envelope.signatures):  # type: ignore[arg-type]
            report.fail("model-signatures", f"{m.name}: the signature envelope does not verify with its key")
    report.passed("model-signatures")


def verify_bundle(
    path: Path | str, public_key: Ed25519PublicKey, *, checkpoint_key: Ed25519PublicKey | None = None
) -> BundleReport:
    """Check a bundle offline; ``ok`` only when every check passed (see the module docstring for which)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"bundle {path} does not exist")
    report = BundleReport(str(path))
    members = _read_members(path, report)
    if members is None:
        return report
    manifest = _check_signature({m.name: m for m in members}, public_key, report)
    if manifest is None:
        return report
    checked = _check_members(members, manifest, report)
    if checked is None:
        return report
    kinds, rebuilt = checked
    if rebuilt is not None:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != rebuilt:
            report.fail("archive-encoding", "the archive's headers or padding were edited (not its canonical encoding)")
        else:
            report.passed("archive-encoding")
    cp = _check_checkpoints(kinds, manifest, checkpoint_key or public_key, report)
    if cp is None:
        return report
    by_kind = {m.kind: m for m in kinds.values()}
    try:
        first, last, count = (manifest["slice"][k] for k in ("first_seq", "last_seq", "records"))
    except (KeyError, TypeError):
        report.fail("manifest", "the manifest has no slice")
        return report
    proven: Proven = {}
    records = by_kind.get("records")
    seqs = _check_records(records, cp, "inclusion", report, True, proven) if records is not None else []
    if seqs != list(range(first, last + 1)) or len(seqs) != count:
        report.fail("inclusion", f"the slice should hold records {first}..{last}; it holds {len(seqs)} records")
    report.records, report.first_seq, report.last_seq = len(seqs), first, last
    if "alerts" in by_kind:
        report.alerts = len(_check_records(by_kind["alerts"], cp, "alerts", report, False, proven))
    _check_model_signatures(kinds, report)
    return report

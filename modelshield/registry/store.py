"""The model registry: which model versions exist, what they hash to, who owns them, and which one is served.

Each version is registered with the SHA-256 digest of its file or folder (``integrity.provenance.hash_tree``),
its owner, the datasets it was trained on and, optionally, an OpenSSF model-signing signature that is verified
before the version is accepted. Versions move ``registered -> staged -> production`` (a production version can
first take a canary share of traffic) and end ``retired``; ``verify`` re-hashes a version and, on any mismatch,
moves it to ``quarantined`` (never served again), writes a security event to the audit log and raises
``IntegrityError``. Every change is also written to the audit log, so the registry's history is tamper-evident
even though its table is the current state. A change to what is served (pin, unpin, promote, retire, quarantine)
also bumps the store's serving generation (``core.generation``) in its transaction: gateway replicas poll that
number and switch versions when it moves.
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelshield.audit.canonical import canonical_json
from modelshield.audit.log import AuditLog
from modelshield.core import generation
from modelshield.core.errors import DependencyError, InputError, IntegrityError, ModelShieldError
from modelshield.core.storage import ensure_schema, open_engine, write_transaction
from modelshield.integrity.provenance import hash_tree

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
STAGES = ("registered", "staged", "production")
STATUSES = (*STAGES, "retired", "quarantined")
SERVABLE = ("registered", "staged", "production")
MAX_METADATA_BYTES = 64 * 1024
_LOCK = "modelshield-registry"

metadata = sa.MetaData()
versions = sa.Table(
    "registry_models",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("pinned", sa.Boolean, nullable=False, default=False),
    sa.Column("canary_percent", sa.Float, nullable=True),
    sa.Column("signature_path", sa.Text, nullable=True),
    sa.Column("public_key", sa.Text, nullable=True),
    sa.Column("datasets", sa.Text, nullable=False),  # JSON list
    sa.Column("metadata", sa.Text, nullable=False),  # JSON object
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, as stored."""

    name: str
    version: int
    digest: str
    path: str
    owner: str
    status: str
    pinned: bool
    signature_path: str | None
    datasets: tuple[str, ...]
    created_at: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    public_key: str | None = None
    canary_percent: float | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "datasets": list(self.datasets), "metadata": dict(self.metadata)}


def check_name(name: str) -> str:
    """Model names go into URLs and paths: lower-case letters, digits, '.', '_', '-' only, so no traversal."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(
            f"model name {name!r} is not valid (1-64 of a-z, 0-9, '.', '_', '-'; start with a letter or digit)"
        )
    return name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _row(row: Any) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=row.version,
        digest=row.digest,
        path=row.path,
        owner=row.owner,
        status=row.status,
        pinned=bool(row.pinned),
        signature_path=row.signature_path,
        datasets=tuple(json.loads(row.datasets)),
        created_at=row.created_at,
        metadata=json.loads(row.metadata),
        public_key=row.public_key,
        canary_percent=row.canary_percent,
    )


def _verify_signature(path: Path, public_key: str, signature: str | None) -> str:
    """Check an OpenSSF model-signing signature with ``integrity.signing``; returns the signature path used."""
    try:
        from modelshield.integrity.signing import default_signature_path, verify_model
    except ImportError:
        raise DependencyError(
            "signature verification needs modelshield.integrity.signing, which this build lacks"
        ) from None
    sig = signature or str(default_signature_path(path))
    verify_model(path, public_key, sig)
    return sig


class Registry:
    """Model versions in the store at ``url``; changes are recorded in ``audit`` (by default the same store's log)."""

    def __init__(self, engine: Engine, audit: AuditLog | None = None) -> None:
        ensure_schema(engine, "registry", metadata, 1)
        generation.ensure(engine)
        self._engine = engine
        self._audit = audit
        self._own_audit = audit is None

    @classmethod
    def open(cls, url: str | None = None, *, audit: AuditLog | None = None) -> Registry:
        return cls(open_engine(url), audit)

    def close(self) -> None:
        if self._own_audit and self._audit is not None:
            self._audit.close()  # also disposes the shared engine
        else:
            self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, action: str, mv: ModelVersion, actor: str | None, **extra: Any) -> None:
        """Write the change to the audit log (durable before the call returns)."""
        if self._audit is None:
            self._audit = AuditLog(self._engine)
        event = {
            "action": f"registry.{action}",
            "actor": {"subject": actor or getpass.getuser(), "method": "local"},
            "decision": "allow",
            "model": mv.name,
            "model_version": mv.version,
            "model_digest": mv.digest,
            "status": mv.status,
            **extra,
        }
        self._audit.append(event)

    # -- reads ---------------------------------------------------------------------------------------------

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of all models), oldest first."""
        query = sa.select(versions).order_by(versions.c.name, versions.c.version)
        if name is not None:
            query = query.where(versions.c.name == check_name(name))
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version by number; with ``None`` the one to serve: the pinned version, else production."""
        with self._engine.connect() as conn:
            return self._get(conn, name, version)

    def _get(self, conn: Connection, name: str, version: int | None) -> ModelVersion:
        check_name(name)
        query = sa.select(versions).where(versions.c.name == name)
        if version is not None:
            row = conn.execute(query.where(versions.c.version == version)).first()
            if row is None:
                raise InputError(f"model {name!r} has no version {version}")
            return _row(row)
        rows = conn.execute(query.order_by(versions.c.version.desc())).all()
        if not rows:
            raise InputError(f"no model named {name!r} is registered", hint="modelshield registry list")
        for row in rows:
            if row.pinned:
                return _row(row)
        for row in rows:
            if row.status == "production" and row.canary_percent is None:
                return _row(row)
        raise InputError(
            f"model {name!r} has no pinned or production version", hint=f"modelshield registry promote {name} VERSION"
        )

    def canary(self, name: str) -> ModelVersion | None:
        """The version taking a canary share of ``name``'s traffic, if any (``canary_percent`` says how much)."""
        return next((mv for mv in self.list(name) if mv.status == "production" and mv.canary_percent is not None), None)

    # -- changes -------------------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        path: str | Path,
        *,
        owner: str,
        datasets: Iterable[str] = (),
        signature: str | Path | None = None,
        public_key: str | Path | None = None,
        metadata: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Hash ``path`` and add it as the next version of ``name``; a given signature must verify first."""
        check_name(name)
        if not owner or not owner.strip() or len(owner) > 200 or not owner.isprintable():
            raise InputError("owner must be a printable name of 1-200 characters")
        data_refs = tuple(datasets)
        if not all(isinstance(d, str) and d.strip() and d.isprintable() for d in data_refs):
            raise InputError("dataset references must be non-empty printable strings")
        meta = dict(metadata or {})
        if len(canonical_json(meta)) > MAX_METADATA_BYTES:
            raise InputError(f"metadata is over {MAX_METADATA_BYTES} bytes")
        if signature is not None and public_key is None:
            raise InputError("a signature needs the public key to check it with (--public-key)")
        model = Path(path).absolute()
        digest = hash_tree(model).digest
        sig_path = key_ref = None
        if public_key is not None:
            key_ref = str(Path(public_key).absolute())
            sig_path = _verify_signature(model, key_ref, str(Path(signature).absolute()) if signature else None)
            if hash_tree(model).digest != digest:
                raise IntegrityError(f"{model} changed while it was being registered")
        now = _now()
        with write_transaction(self._engine, _LOCK) as conn:
            latest = conn.execute(sa.select(sa.func.max(versions.c.version)).where(versions.c.name == name)).scalar()
            mv = ModelVersion(
                name,
                (latest or 0) + 1,
                digest,
                str(model),
                owner.strip(),
                "registered",
                False,
                sig_path,
                data_refs,
                now,
                meta,
                key_ref,
                None,
            )
            conn.execute(
                versions.insert().values(
                    name=mv.name,
                    version=mv.version,
                    digest=mv.digest,
                    path=mv.path,
                    owner=mv.owner,
                    status=mv.status,
                    pinned=False,
                    canary_percent=None,
                    signature_path=sig_path,
                    public_key=key_ref,
                    datasets=json.dumps(list(data_refs)),
                    metadata=json.dumps(meta),
                    created_at=now,
                    updated_at=now,
                )
            )
        self._record("register", mv, actor, signed=sig_path is not None)
        return mv

    def _update(self, conn: Connection, mv: ModelVersion, **values: Any) -> ModelVersion:
        conn.execute(
            versions.update()
            .where(versions.c.name == mv.name, versions.c.version == mv.version)
            .values(updated_at=_now(), **values)
        )
        return self._get(conn, mv.name, mv.version)

    def pin(self, name: str, version: int, *, actor: str | None = None) -> ModelVersion:
        """Serve exactly this version (this digest) of ``name`` until unpinned, whatever is in production."""
        with write_transaction(self._engine, _LOCK) as conn:
            mv = self._get(conn, name, version)
            if mv.status not in SERVABLE:
                raise InputError(f"{mv.ref} is {mv.status} and cannot be pinned")
            conn.execute(
                versions.update()
                .where(versions.c.name == name, versions.c.pinned.is_(True))
                .values(pinned=False, updated_at=_now())
            )
            mv = self._update(conn, mv, pinned=True)
            generation.bump(conn)
        self._record("pin", mv, actor)
        return mv

    def pin_digest(self, name: str, digest: str, *, actor: str | None = None) -> ModelVersion:
        """Pin the version of ``name`` whose digest is ``digest`` (``sha256:<hex>``)."""
        match = [mv for mv in self.list(name) if mv.digest == digest]
        if not match:
            raise InputError(f"model {name!r} has no version with digest {digest}")
        return self.pin(name, match[-1].version, actor=actor)

    def unpin(self, name: str, *, actor: str | None = None) -> None:
        """Go back to serving the production version."""
        with write_transaction(self._engine, _LOCK) as conn:
            rows = conn.execute(
                sa.select(versions).where(versions.c.name == check_name(name), versions.c.pinned.is_(True))
            ).all()
            changed = [self._update(conn, _row(r), pinned=False) for r in rows]
            if changed:
                generation.bump(conn)
        for mv in changed:
            self._record("unpin", mv, actor)

    def promote(
        self, name: str, version: int, stage: str, *, canary: float | None = None, actor: str | None = None
    ) -> ModelVersion:
        """Move a version forward (registered -> staged -> production); ``canary`` = percent of traffic for a
        production candidate, served beside the current production version until promoted fully."""
        if stage not in STAGES[1:]:
            raise InputError(f"stage must be 'staged' or 'production', not {stage!r}")
        if canary is not None and (stage != "production" or not 0 < canary < 100):
            raise InputError("a canary is a production release with a traffic share between 0 and 100 percent")
        with write_transaction(self._engine, _LOCK) as conn:
            mv = self._get(conn, name, version)
            allowed_from = {"staged": ("registered",), "production": ("staged", "production")}[stage]
            if mv.status not in allowed_from or (mv.status == "production" and mv.canary_percent is None):
                raise InputError(
                    f"{mv.ref} is {mv.status}; only a {' or canary '.join(allowed_from)} version can become {stage}"
                )
            others = [
                _row(r)
                for r in conn.execute(
                    sa.select(versions).where(
                        versions.c.name == name, versions.c.version != version, versions.c.status == "production"
                    )
                )
            ]
            if stage == "production" and canary is not None:
                if not any(o.canary_percent is None for o in others):
                    raise InputError(
                        f"{name} has no production version for a canary to share traffic with",
                        hint=f"promote {mv.ref} without --canary",
                    )
                for old in others:
                    if old.canary_percent is not None:
                        self._update(conn, old, status="staged", canary_percent=None)
            elif stage == "production":
                for old in others:
                    self._update(conn, old, status="staged", canary_percent=None)
            mv = self._update(conn, mv, status=stage, canary_percent=canary)
            generation.bump(conn)
        self._record("promote", mv, actor, canary_percent=canary)
        return mv

    def retire(self, name: str, version: int, *, actor: str | None = None) -> ModelVersion:
        """Stop a version for good: it is unpinned and never served again."""
        with write_transaction(self._engine, _LOCK) as conn:
            mv = self._get(conn, name, version)
            if mv.status == "retired":
                raise InputError(f"{mv.ref} is already retired")
            mv = self._update(conn, mv, status="retired", pinned=False, canary_percent=None)
            generation.bump(conn)
        self._record("retire", mv, actor)
        return mv

    def verify(self, mv: ModelVersion, *, actor: str | None = None) -> None:
        """Re-hash the version's files (and re-check its signature); on any mismatch quarantine it, write a
        security event and raise ``IntegrityError``."""
        try:
            actual = hash_tree(mv.path).digest
            if actual != mv.digest:
                raise IntegrityError(f"{mv.ref}: {mv.path} hashes to {actual}, registered as {mv.digest}")
            if mv.public_key is not None:
                _verify_signature(Path(mv.path), mv.public_key, mv.signature_path)
        except DependencyError:
            raise
        except ModelShieldError as exc:
            reason = str(exc) if isinstance(exc, IntegrityError) else f"{mv.ref}: {exc}"
            with write_transaction(self._engine, _LOCK) as conn:
                quarantined = self._update(
                    conn, self._get(conn, mv.name, mv.version), status="quarantined", pinned=False, canary_percent=None
                )
                generation.bump(conn)
            self._record("quarantine", quarantined, actor, type="security", decision="error", reason=reason)
            raise IntegrityError(
                f"{reason} (quarantined)", hint="restore the files from a trusted copy and register them again"
            ) from None

"""API keys: ``msk_<key id>_<secret>``, stored only as a peppered, salted keyed hash.

Why HMAC-SHA-256 and not scrypt/argon2: a slow KDF protects *guessable* secrets (passwords) by making
each guess expensive. Our secrets are 256 random bits, so guessing is already infeasible at any hash
speed, and the gateway has a 1 ms latency budget per request that a 50 ms KDF would blow many times
over. What a leaked database must not allow is offline checking of candidate keys: the HMAC key (the
*pepper*) lives outside the database — a 0600 file or a mounted secret — so the stored digests are
useless without it. The per-key salt keeps two stores sharing a pepper from sharing digests.
Verification compares digests with ``hmac.compare_digest`` (constant time).

Each key row records the id of the pepper it was made under (a hash of the pepper, not the pepper). A
key checked under another pepper is refused with a message that says the server holds the wrong pepper,
not a bare "invalid API key"; and a missing default pepper file is created only while no usable key
needs the old one: otherwise ``ApiKeyStore.open`` refuses and says which file to restore.

Life cycle: ``create`` prints the key once; ``rotate`` issues a successor and lets the old key live
until the overlap window ends; ``revoke`` is immediate in this process and, with a Redis
``RevocationFeed``, in every replica within milliseconds (without it, other processes notice within
``cache_ttl`` seconds). Verified keys are cached in memory so a request does not touch the database,
and "last used" times are written in batches at most every ``last_used_interval`` seconds. While the store
cannot be read, or gives no answer within ``lookup_seconds``, a key not verified in the last ``cache_ttl``
seconds is refused with 503 (``ServiceUnavailableError``), never accepted unchecked.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa

from modelshield.core.errors import InputError, KeyringError
from modelshield.core.storage import data_home, ensure_schema, open_engine, safe_url, write_transaction
from modelshield.integrity.keys import atomic_output, check_private
from modelshield.serve.errors import AuthenticationError, ServiceUnavailableError
from modelshield.serve.feed import RedisFeed
from modelshield.serve.identity import Identity

log = logging.getLogger(__name__)

KEY_PREFIX = "msk"
SECRET_BYTES = 32  # 256 bits
KEY_ID_BYTES = 8
PEPPER_ENV = "MODELSHIELD_KEY_PEPPER_FILE"
PEPPER_MIN_BYTES = 32
DEFAULT_KEY_LIFETIME = 90 * 86400.0
OUTAGE_LOG_SECONDS = 5.0
LOOKUP_SECONDS = 2.0  # the longest a verification waits for the store before refusing with 503
SCHEMA_VERSION = 1
_TOKEN = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{{2 * KEY_ID_BYTES}}})_([a-z2-7]{{52}})")
_KEY_ID = re.compile(rf"[0-9a-f]{{{2 * KEY_ID_BYTES}}}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,127}")
_SUBJECT = re.compile(r"[^\x00-\x1f\x7f]{1,256}")

metadata = sa.MetaData()
api_keys_table = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("subject", sa.String(256), nullable=False, index=True),
    sa.Column("roles", sa.Text, nullable=False),
    sa.Column("tenant", sa.String(128)),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("salt", sa.String(32), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("pepper_id", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
    sa.Column("rotated_from", sa.String(32)),
    sa.Column("replaced_by", sa.String(32)),
    sa.Column("last_used_at", sa.Float),
)


def looks_like_api_key(token: str) -> bool:
    """True for anything shaped like ``msk_...`` (it is then verified as a key, never as a JWT)."""
    return token.startswith(KEY_PREFIX + "_")


def key_id_of(token: str) -> str:
    """The key id inside a well-formed key; ``AuthenticationError`` if it is not one."""
    m = _TOKEN.fullmatch(token)
    if m is None:
        raise AuthenticationError("malformed API key")
    return m.group(1)


def pepper_path(path: str | Path | None = None) -> Path:
    """Where the pepper lives: ``path`` > ``$MODELSHIELD_KEY_PEPPER_FILE`` > ``$MODELSHIELD_HOME/apikey-pepper``."""
    explicit = path or os.environ.get(PEPPER_ENV)
    return Path(explicit) if explicit else data_home() / "apikey-pepper"


def pepper_id(pepper: bytes) -> str:
    """The id a key row records of the pepper it was made under (a one-way hash: it reveals nothing of the pepper)."""
    return hashlib.sha256(b"modelshield-pepper-id" + pepper).hexdigest()[:16]


def load_pepper(path: str | Path | None = None, *, create: bool = True) -> bytes:
    """The server-side HMAC key from ``pepper_path(path)``.

    The file holds ≥32 random bytes in base64. The default file is created (0600) on first use; an
    explicit one must exist. Files that others can read or write are refused, as ssh does with keys
    (group read is allowed so a Kubernetes secret mounted with ``fsGroup`` works). ``ApiKeyStore.open``
    refuses to create the default file while keys made under an earlier pepper are still usable.
    """
    explicit = path or os.environ.get(PEPPER_ENV)
    file = pepper_path(path)
    if not file.exists():
        if explicit or not create:
            raise KeyringError(f"API key pepper file {file} does not exist", hint=f"create it or unset {PEPPER_ENV}")
        _create_pepper(file)
    check_private(file, "API key pepper file", group_read=True)
    try:
        pepper = base64.b64decode(file.read_text(encoding="ascii").strip(), validate=True)
    except (ValueError, UnicodeDecodeError):
        raise KeyringError(f"API key pepper file {file} is not base64") from None
    if len(pepper) < PEPPER_MIN_BYTES:
        raise KeyringError(f"API key pepper file {file} holds {len(pepper)} bytes; at least {PEPPER_MIN_BYTES} needed")
    return pepper


def _create_pepper(file: Path) -> None:
    """Write a new pepper (0600) and link it into place exclusively: readers never see half a file, and when two
    processes race, the first link wins and both use that pepper."""
    with contextlib.suppress(FileExistsError), atomic_output(file, mode=0o600, exclusive=True) as f:
        f.write((base64.b64encode(secrets.token_bytes(PEPPER_MIN_BYTES)).decode() + "\n").encode())


class UnknownKeyError(InputError):
    """No key by that id in the store (the admin API answers 404, not 422)."""


class IssuedKey(NamedTuple):
    """A new key: its id, and the plaintext that is shown to the user once and never stored."""

    key_id: str
    plaintext: str


@dataclass(frozen=True)
class KeyInfo:
    """What ``list`` shows about a key: everything except its secret and digest."""

    key_id: str
    subject: str
    roles: tuple[str, ...]
    tenant: str | None
    scopes: tuple[str, ...]
    attributes: Mapping[str, str]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    rotated_from: str | None
    replaced_by: str | None
    last_used_at: float | None

    def status(self, now: float | None = None) -> str:
        """``active``, ``rotating`` (replaced, still inside its overlap window), ``expired`` or ``revoked``."""
        now = time.time() if now is None else now
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "rotating" if self.replaced_by else "active"


@dataclass(frozen=True)
class _Record:
    info: KeyInfo
    salt: bytes
    digest: bytes
    pepper_id: str
    identity: Identity


def _record(row: Any) -> _Record:
    attributes = json.loads(row.attributes)
    info = KeyInfo(
        key_id=row.key_id,
        subject=row.subject,
        roles=tuple(json.loads(row.roles)),
        tenant=row.tenant,
        scopes=tuple(json.loads(row.scopes)),
        attributes=attributes,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        rotated_from=row.rotated_from,
        replaced_by=row.replaced_by,
        last_used_at=row.last_used_at,
    )
    identity = Identity(
        subject=info.subject,
        method="api_key",
        roles=info.roles,
        tenant=info.tenant,
        scopes=info.scopes,
        attributes={**attributes, "key_id": info.key_id},
    )
    return _Record(info, bytes.fromhex(row.salt), bytes.fromhex(row.digest), row.pepper_id, identity)


def _check_names(kind: str, values: Iterable[str]) -> tuple[str, ...]:
    out = tuple(values)
    for value in out:
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise InputError(
                f"{kind} {value!r} is not valid (1-128 of letters, digits and _.:@/+-, starting alphanumeric)"
            )
    return out


class ApiKeyStore:
    """API keys in the shared store (table ``api_keys``), verified against an in-memory cache."""

    def __init__(
        self,
        engine: sa.Engine,
        pepper: bytes,
        *,
        cache_ttl: float = 5.0,
        cache_size: int = 10_000,
        last_used_interval: float = 60.0,
        revocations: RevocationFeed | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(pepper) < PEPPER_MIN_BYTES:
            raise KeyringError(f"the API key pepper must be at least {PEPPER_MIN_BYTES} bytes")
        self.engine = engine
        self._pepper = pepper
        self._pepper_id = pepper_id(pepper)
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self.last_used_interval = last_used_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[_Record | None, float]] = OrderedDict()
        self._revoked: set[str] = set()
        self._touched: dict[str, float] = {}
        self._last_flush = clock()
        self._flushing = threading.Lock()
        self._told_pepper: set[str] = set()
        self._last_outage_log = -OUTAGE_LOG_SECONDS
        self.lookup_seconds = LOOKUP_SECONDS
        self._reading: dict[int, float] = {}  # reader thread -> when its read started
        self._in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        ensure_schema(engine, "apikeys", metadata, SCHEMA_VERSION)
        self.revocations = revocations
        if revocations is not None:
            revocations.start(self._on_remote_revoke)

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        pepper_file: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> ApiKeyStore:
        """Open the store at ``url`` (default: ``MODELSHIELD_DB_URL`` or the local SQLite file).

        A missing default pepper file is created only when no usable key was made under an earlier pepper:
        a new pepper would silently invalidate every such key, so then the file must be restored instead.
        """
        engine = open_engine(url)
        try:
            file = pepper_path(pepper_file)
            if not file.exists():
                _refuse_new_pepper_over_keys(engine, file, clock())
            return cls(engine, load_pepper(pepper_file), clock=clock, **kwargs)
        except BaseException:
            engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"ApiKeyStore({safe_url(str(self.engine.url))!r})"

    # -- issuing -----------------------------------------------------------------------------------

    def _digest(self, salt: bytes, key_id: str, secret: str) -> bytes:
        return hmac.new(self._pepper, salt + key_id.encode() + b"." + secret.encode(), hashlib.sha256).digest()

    def _new_row(
        self,
        subject: str,
        roles: Sequence[str],
        tenant: str | None,
        scopes: Sequence[str],
        attributes: Mapping[str, str],
        expires_at: float | None,
        now: float,
    ) -> tuple[dict[str, Any], IssuedKey]:
        key_id = secrets.token_hex(KEY_ID_BYTES)
        secret = base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=").lower()
        salt = secrets.token_bytes(16)
        row = {
            "key_id": key_id,
            "subject": subject,
            "roles": json.dumps(list(roles)),
            "tenant": tenant,
            "scopes": json.dumps(list(scopes)),
            "attributes": json.dumps(dict(attributes), sort_keys=True),
            "salt": salt.hex(),
            "digest": self._digest(salt, key_id, secret).hex(),
            "pepper_id": self._pepper_id,
            "created_at": now,
            "expires_at": expires_at,
        }
        return row, IssuedKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}")

    def create(
        self,
        subject: str,
        roles: Sequence[str],
        tenant: str | None = None,
        scopes: Sequence[str] = (),
        expires_in: float | None = DEFAULT_KEY_LIFETIME,
        attributes: Mapping[str, str] | None = None,
    ) -> IssuedKey:
        """Issue a key; the plaintext in the result is the only copy (the store keeps a keyed hash)."""
        if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
            raise InputError("the subject must be 1-256 printable characters")
        roles = _check_names("role", roles)
        if not roles:
            raise InputError("a key needs at least one role")
        scopes = _check_names("scope", scopes)
        if tenant is not None:
            _check_names("tenant", [tenant])
        attrs = {str(k): str(v) for k, v in (attributes or {}).items()}
        _check_names("attribute name", attrs)
        if expires_in is not None and not expires_in > 0:
            raise InputError("expires_in must be a positive number of seconds (or None for a key that never expires)")
        now = self._clock()
        row, issued = self._new_row(
            subject, roles, tenant, scopes, attrs, None if expires_in is None else now + expires_in, now
        )
        with self.engine.begin() as conn:
            conn.execute(api_keys_table.insert().values(**row))
        log.info("api key created", extra={"key_id": issued.key_id, "subject": subject, "roles": list(roles)})
        return issued

    def rotate(self, key_id: str, overlap_seconds: float = 3600.0) -> str:
        """Issue a successor with the same subject, roles, tenant, scopes and lifetime; return its plaintext.

        The old key keeps working until ``overlap_seconds`` from now (or its own expiry, if sooner), so
        clients can switch without downtime; then it is refused.
        """
        if overlap_seconds < 0:
            raise InputError("the overlap must be zero or more seconds")
        now = self._clock()
        with write_transaction(self.engine, "modelshield-apikeys") as conn:
            old = self._load(conn, key_id)
            if old is None:
                raise UnknownKeyError(f"no API key {key_id!r}")
            status = old.info.status(now)
            if status != "active":
                where = f" to {old.info.replaced_by}" if old.info.replaced_by else ""
                raise InputError(f"API key {key_id} is {status}{where}; only an active key can be rotated")
            lifetime = None if old.info.expires_at is None else old.info.expires_at - old.info.created_at
            row, issued = self._new_row(
                old.info.subject,
                old.info.roles,
                old.info.tenant,
                old.info.scopes,
                old.info.attributes,
                None if lifetime is None else now + lifetime,
                now,
            )
            row["rotated_from"] = key_id
            conn.execute(api_keys_table.insert().values(**row))
            old_end = now + overlap_seconds
            if old.info.expires_at is not None:
                old_end = min(old_end, old.info.expires_at)
            updated = conn.execute(
                api_keys_table.update()
                .where(api_keys_table.c.key_id == key_id, api_keys_table.c.replaced_by.is_(None))
                .values(expires_at=old_end, replaced_by=issued.key_id)
            )
            if updated.rowcount != 1:
                raise InputError(f"API key {key_id} was rotated concurrently; list the keys and retry")
        self._evict(key_id)
        log.info("api key rotated", extra={"key_id": key_id, "new_key_id": issued.key_id, "overlap_s": overlap_seconds})
        return issued.plaintext

    def revoke(self, key_id: str) -> None:
        """Refuse this key from now on: at once in this process, in other replicas via the revocation feed."""
        if not _KEY_ID.fullmatch(key_id):
            raise InputError(f"{key_id!r} is not a key id")
        with self.engine.begin() as conn:
            updated = conn.execute(
                api_keys_table.update()
                .where(api_keys_table.c.key_id == key_id, api_keys_table.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            if updated.rowcount == 0 and self._load(conn, key_id) is None:
                raise UnknownKeyError(f"no API key {key_id!r}")
        with self._lock:
            self._revoked.add(key_id)
            self._cache.pop(key_id, None)
        if self.revocations is not None:
            self.revocations.publish(key_id)
        log.info("api key revoked", extra={"key_id": key_id})

    def list(self, subject: str | None = None) -> list[KeyInfo]:
        """Every key (or one subject's), oldest first; no secrets or digests."""
        query = sa.select(api_keys_table).order_by(api_keys_table.c.created_at, api_keys_table.c.key_id)
        if subject is not None:
            query = query.where(api_keys_table.c.subject == subject)
        with self.engine.connect() as conn:
            return [_record(row).info for row in conn.execute(query)]

    # -- verifying ---------------------------------------------------------------------------------

    def verify(self, token: str) -> Identity:
        """The identity behind a key, or ``AuthenticationError``; no database access when the key is cached."""
        key_id = key_id_of(token)
        secret = token.rsplit("_", 1)[1]
        record = self._lookup(key_id)
        # Compare against a dummy digest for unknown ids so both paths do the same work.
        salt, expected = (record.salt, record.digest) if record is not None else (b"\0" * 16, b"\0" * 32)
        if not hmac.compare_digest(self._digest(salt, key_id, secret), expected) or record is None:
            if record is not None and record.pepper_id != self._pepper_id:
                raise self._wrong_pepper(key_id, record.pepper_id)
            raise AuthenticationError("invalid API key")
        now = self._clock()
        if key_id in self._revoked or record.info.revoked_at is not None:
            raise AuthenticationError("API key revoked")
        if record.info.expires_at is not None and now >= record.info.expires_at:
            raise AuthenticationError(
                "API key expired" + (" (rotated; use its successor)" if record.info.replaced_by else "")
            )
        self._touch(key_id, now)
        return record.identity

    def _wrong_pepper(self, key_id: str, made_under: str) -> AuthenticationError:
        """A real key checked under the wrong pepper: say so, to the client and (once per pepper) in the log."""
        if made_under not in self._told_pepper:
            self._told_pepper.add(made_under)
            log.error(
                "API key %s was made under pepper %s, but this process holds pepper %s: restore the pepper "
                "file the keys were issued with",
                key_id,
                made_under,
                self._pepper_id,
            )
        return AuthenticationError(
            "API key was issued under another pepper than the server's: the server is "
            "misconfigured (its pepper file is not the one the key was made with)"
        )

    @property
    def pepper_id(self) -> str:
        """The id of this store's pepper (what the keys it issues record)."""
        return self._pepper_id

    def foreign_keys(self) -> int:
        """How many usable (not revoked, not expired) keys were made under another pepper than this store's."""
        return sum(n for pid, n in usable_keys_by_pepper(self.engine, self._clock()).items() if pid != self._pepper_id)

    def _load(self, conn: sa.Connection, key_id: str) -> _Record | None:
        row = conn.execute(sa.select(api_keys_table).where(api_keys_table.c.key_id == key_id)).first()
        return None if row is None else _record(row)

    def _lookup(self, key_id: str) -> _Record | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key_id)
            if hit is not None and 0 <= now - hit[1] < self.cache_ttl:
                self._cache.move_to_end(key_id)
                return hit[0]
        record = self._read(key_id)
        with self._lock:
            self._cache[key_id] = (record, now)
            self._cache.move_to_end(key_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return record

    def _read(self, key_id: str) -> _Record | None:
        """One key's row, read in a reader thread and waited for at most ``lookup_seconds``: a database that keeps
        its connections open but does not answer (hung, overloaded, a black-holed network) must not hang the
        caller — the gateway verifies keys on its event loop. While a read has been stuck that long, the next
        ones are refused at once instead of queueing behind it."""
        started = min(list(self._reading.values()), default=None)
        if started is not None and (stuck := time.monotonic() - started) > self.lookup_seconds:
            raise self._store_unavailable(f"a read has had no answer for {stuck:.0f} s")
        future: Future[_Record | None] = Future()
        if self._in_memory:  # each thread would see its own, empty database; nothing in-process can hang
            self._read_now(key_id, future)
        else:  # a daemon thread per read (a cache miss): one stuck on a hung database never holds up the exit
            threading.Thread(target=self._read_now, args=(key_id, future), name="apikey-lookup", daemon=True).start()
        try:
            return future.result(timeout=self.lookup_seconds)
        except TimeoutError:
            raise self._store_unavailable(f"no answer within {self.lookup_seconds:g} s") from None
        except sa.exc.SQLAlchemyError as exc:
            reason = (str(getattr(exc, "orig", exc)).splitlines() or [""])[0]
            raise self._store_unavailable(f"{type(exc).__name__}: {reason}") from None

    def _read_now(self, key_id: str, future: Future[_Record | None]) -> None:
        me = threading.get_ident()
        self._reading[me] = time.monotonic()
        try:
            with self.engine.connect() as conn:
                future.set_result(self._load(conn, key_id))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller waiting on it
            future.set_exception(exc)
        finally:
            del self._reading[me]

    def _store_unavailable(self, why: str) -> ServiceUnavailableError:
        """The store cannot be read (database down, restarting or not answering): a key that is not cached is
        refused with 503, never accepted unchecked; one log line per ``OUTAGE_LOG_SECONDS``, not one per request."""
        now = time.monotonic()
        if now - self._last_outage_log > OUTAGE_LOG_SECONDS:
            self._last_outage_log = now
            log.error(
                "API key store %s unavailable (%s); refusing keys not verified in the last %g s",
                safe_url(str(self.engine.url)),
                why,
                self.cache_ttl,
            )
        return ServiceUnavailableError("the API key store is unavailable")

    def _evict(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def _on_remote_revoke(self, key_id: str) -> None:
        with self._lock:
            self._revoked.add(key_id)
            self._cache.pop(key_id, None)

    # -- last-used bookkeeping -------------------------------------------------------------------

    def _touch(self, key_id: str, now: float) -> None:
        with self._lock:
            self._touched[key_id] = now
        if abs(now - self._last_flush) >= self.last_used_interval and self._flushing.acquire(blocking=False):
            self._last_flush = now
            threading.Thread(target=self._flush_locked, name="apikey-last-used", daemon=True).start()

    def flush_last_used(self) -> int:
        """Write pending "last used" times now (one batched UPDATE); returns how many keys were written."""
        with self._flushing:
            return self._flush_unlocked()

    def _flush_locked(self) -> None:
        try:
            self._flush_unlocked()
        except sa.exc.SQLAlchemyError as exc:
            log.error("could not record API key last-used times (kept for the next try): %s", type(exc).__name__)
        finally:
            self._flushing.release()

    def _flush_unlocked(self) -> int:
        with self._lock:
            pending, self._touched = self._touched, {}
        if not pending:
            return 0
        t = api_keys_table.c
        stmt = (
            api_keys_table.update()
            .where(t.key_id == sa.bindparam("k"), sa.or_(t.last_used_at.is_(None), t.last_used_at < sa.bindparam("t")))
            .values(last_used_at=sa.bindparam("t"))
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt, [{"k": k, "t": v} for k, v in pending.items()])
        except sa.exc.SQLAlchemyError:
            with self._lock:  # keep them for the next flush, unless a newer use came in meanwhile
                self._touched = {**pending, **self._touched}
            raise
        return len(pending)

    def close(self) -> None:
        """Flush last-used times (a store that is down loses only those) and stop listening for revocations."""
        try:
            self.flush_last_used()
        except sa.exc.SQLAlchemyError as exc:
            log.error("API key last-used times not recorded at close: %s", type(exc).__name__)
        finally:
            if self.revocations is not None:
                self.revocations.stop()


def usable_keys_by_pepper(engine: sa.Engine, now: float) -> dict[str, int]:
    """Pepper id -> how many keys made under it are neither revoked nor expired at ``now`` (none: no table yet)."""
    if not sa.inspect(engine).has_table(api_keys_table.name):
        return {}
    t = api_keys_table.c
    query = (
        sa.select(t.pepper_id, sa.func.count())
        .where(t.revoked_at.is_(None), sa.or_(t.expires_at.is_(None), t.expires_at > now))
        .group_by(t.pepper_id)
    )
    with engine.connect() as conn:
        return {pid: int(n) for pid, n in conn.execute(query)}


def _refuse_new_pepper_over_keys(engine: sa.Engine, file: Path, now: float) -> None:
    """A missing pepper file while usable keys need the old pepper: refuse, and say what to restore."""
    in_use = usable_keys_by_pepper(engine, now)
    if in_use:
        count, ids = sum(in_use.values()), ", ".join(sorted(in_use))
        raise KeyringError(
            f"API key pepper file {file} is missing, but the key store holds {count} usable keys made under pepper "
            f"{ids}; a new pepper would make every one of them invalid",
            hint=f"restore {file} from your backup or the secret it was mounted from; if that pepper is lost for "
            "good, write a new one yourself, pass it with --pepper-file, and revoke and reissue the old keys",
        )


def revocation_channel(prefix: str = "modelshield") -> str:
    """The revocation feed's channel (and set) under a deployment's ``rate_limits.redis_prefix``."""
    return f"{prefix}:apikeys:revoked"


class RevocationFeed(RedisFeed):
    """Revoked key ids shared through Redis: a set (for replicas that start later) plus a pub/sub channel.

    Each replica's listener thread drops a revoked key from its cache as soon as the message arrives.
    If Redis is unreachable, revocations still reach every replica through the database within
    ``cache_ttl`` seconds.
    """

    def __init__(self, url: str, channel: str = revocation_channel()) -> None:
        super().__init__(url, channel, remember=True)

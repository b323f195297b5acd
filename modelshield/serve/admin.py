"""The gateway's admin write API: containment actions an operator (or ``modelshield incident run``) takes at once.

Each action is a ``POST /v1/admin/...`` with a small JSON body, authenticated like any request, authorised by the
casbin policy (``keys.*`` for keys, ``registry.write`` for pins and quarantines, ``controls.*`` for limits and
the guard, ``incident.*`` for incident notes: the shipped policy gives them to ``admin``) and audited as
``admin.<action>`` with what was asked and what changed (never a key's secret).

Where a change lives, and so what several workers or replicas see:

- key revocation and rotation: in the key store (the database), so every worker refuses a revoked key on its next
  cache miss, and at once where the Redis revocation feed is on; this process refuses it at once;
- pin / roll back: the registry pin is stored; this process swaps the served version at once, other workers keep
  theirs until restarted (or until they are sent the same call);
- quarantine, rate-limit overrides and the guard's strict mode: this process only (in memory; overrides expire).
  With several workers, send the call to each (``modelshield incident run`` does, per ``--target``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelshield.core.errors import InputError, ModelShieldError
from modelshield.serve.config import ModelSource
from modelshield.serve.errors import RequestValidationError, ServiceUnavailableError
from modelshield.serve.ratelimit import LocalTokenBucket, enforce
from modelshield.serve.responses import NotFound

if TYPE_CHECKING:
    from modelshield.serve.gateway import Gateway
    from modelshield.serve.guarding import GatewayGuard
    from modelshield.serve.identity import Identity
    from modelshield.serve.runtime import LoadedModel

log = logging.getLogger("modelshield.serve")
MAX_ADMIN_BODY = 16 * 1024
_ID = r"^[A-Za-z0-9._@:-]{1,128}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


B = TypeVar("B", bound=_Body)


class RevokeBody(_Body):
    """Revoke one key, or every usable key of a subject (a compromised or abusive identity)."""

    key_id: Annotated[str, Field(pattern=_ID)] | None = None
    subject: Annotated[str, Field(pattern=_ID)] | None = None


class RotateBody(_Body):
    key_id: Annotated[str, Field(pattern=_ID)]
    overlap_seconds: Annotated[float, Field(ge=0, le=7 * 86400)] = 0.0


class PinBody(_Body):
    """``version`` None: roll back to the newest servable version older than the one served now."""

    version: Annotated[int, Field(ge=1)] | None = None


class QuarantineBody(_Body):
    """``version`` None: the version served now."""

    version: Annotated[int, Field(ge=1)] | None = None
    reason: Annotated[str, Field(max_length=500)] = ""


class LimitBody(_Body):
    subject: Annotated[str, Field(pattern=_ID)]
    rps: Annotated[float, Field(gt=0, le=10_000)]
    burst: Annotated[float, Field(ge=1, le=100_000)]
    expires_in: Annotated[float, Field(gt=0, le=30 * 86400)] = 3600.0


class GuardBody(_Body):
    """``strict``: refuse flagged inputs (422) instead of abstaining or answering a default; optionally a lower
    detector threshold and a higher minimum confidence. ``normal``: back to the calibrated start-up settings."""

    mode: Literal["strict", "normal"]
    model: Annotated[str, Field(pattern=_ID)] | None = None
    threshold: float | None = None
    min_confidence: Annotated[float, Field(gt=0, le=1)] | None = None


class IncidentNote(_Body):
    """One step of an incident playbook run, recorded in the gateway's audit log by the runner."""

    incident: Annotated[str, Field(pattern=_ID)]
    playbook: Annotated[str, Field(pattern=_ID)]
    step: Annotated[str, Field(max_length=200)]
    action: Annotated[str, Field(pattern=r"^[a-z_.]{1,64}$")]
    status: Literal["started", "done", "failed", "skipped", "approved", "dry-run", "contained", "not-contained"]
    detail: dict[str, Any] = {}


def parse_body(raw: bytes, model: type[B]) -> B:
    """The JSON body as ``model``; any problem is one 422 line naming the field."""
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise RequestValidationError("the body is not JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"])) or "body"
        raise RequestValidationError(f"{where}: {err['msg']}", status=422) from None


@dataclass
class LimitOverride:
    """A tighter bucket for one identity, on top of the configured limits, until ``expires_at`` (monotonic)."""

    bucket: LocalTokenBucket
    rps: float
    burst: float
    expires_at: float


class AdminActions:
    """The containment actions on one gateway's live state; each returns the audit/response summary."""

    def __init__(self, gateway: Gateway, guards: dict[str, GatewayGuard]) -> None:
        self.g = gateway
        self.guards = guards
        self.overrides: dict[str, LimitOverride] = {}
        self._normal_guard: dict[str, tuple[Any, float | None, float | None]] = {}
        self.guard_modes: dict[str, str] = dict.fromkeys(guards, "normal")

    # -- keys --------------------------------------------------------------------------------------------------

    def revoke(self, body: RevokeBody) -> dict[str, Any]:
        store = self._keys()
        if (body.key_id is None) == (body.subject is None):
            raise RequestValidationError("give key_id or subject (one of them)", status=422)
        try:
            if body.key_id is not None:
                store.revoke(body.key_id)
                return {"revoked": [body.key_id]}
            assert body.subject is not None
            usable = [k.key_id for k in store.list(body.subject) if k.status() == "active"]
            for key_id in usable:
                store.revoke(key_id)
        except InputError as exc:
            raise NotFound(str(exc)) from None
        return {"subject": body.subject, "revoked": usable}

    def rotate(self, body: RotateBody) -> tuple[dict[str, Any], str]:
        """The audit summary and the successor's plaintext (for the response only)."""
        store = self._keys()
        try:
            plaintext = store.rotate(body.key_id, overlap_seconds=body.overlap_seconds)
        except InputError as exc:
            raise RequestValidationError(str(exc), status=422) from None
        from modelshield.serve.apikeys import key_id_of

        return {
            "rotated": body.key_id,
            "new_key_id": key_id_of(plaintext),
            "overlap_s": body.overlap_seconds,
        }, plaintext

    def _keys(self) -> Any:
        if self.g.api_keys is None:
            raise ServiceUnavailableError("this gateway has no API key store")
        return self.g.api_keys

    # -- model versions ----------------------------------------------------------------------------------------

    def pin(self, model: str, body: PinBody, actor: str) -> dict[str, Any]:
        """Pin ``version`` (or the previous one) in the registry and serve it from now on in this process."""
        router, registry_name = self._router(model)
        registry = self.g.registry
        if registry is None:
            raise RequestValidationError(f"model {model} is served from a file; pinning needs the registry", 422)
        current = router.primary
        version = body.version
        if version is None:
            older = [
                mv.version
                for mv in registry.list(registry_name)
                if mv.status in ("registered", "staged", "production")
                and (not current.version.isdigit() or mv.version < int(current.version))
            ]
            if not older:
                raise RequestValidationError(f"model {model} has no servable version before {current.version}", 422)
            version = max(older)
        try:
            registry.pin(registry_name, version, actor=actor)
            loaded = self._load(model, ModelSource(registry_name=registry_name, version=version))
        except (ModelShieldError, OSError) as exc:
            raise RequestValidationError(f"model {model} version {version}: {exc}", 422) from None
        if loaded.signature != current.signature:
            loaded.executor.shutdown(wait=False)
            raise RequestValidationError(f"model {model} version {version} takes different inputs", 422)
        router.primary = loaded
        self.g.replaced.append(current)  # its thread may still run the guard's batches; shut at close
        self.g.rehashed.append(loaded)
        log.warning("model %s: now serving version %s (was %s)", model, loaded.version, current.version)
        return {"model": model, "from_version": current.version, "version": loaded.version, "digest": loaded.digest}

    def _load(self, model: str, source: ModelSource) -> LoadedModel:
        from modelshield.serve.runtime import load_source

        loaded = load_source(model, source, self.g.registry)
        loaded.max_batch = self.g.routers[model].primary.max_batch
        return loaded

    def quarantine(self, model: str, body: QuarantineBody) -> dict[str, Any]:
        """Stop serving a version in this process now: requests it would answer get 503 (a canary's go to the
        primary). Pin another version to serve again."""
        router, _ = self._router(model)
        chosen = [v for v in (router.primary, router.canary, router.shadow) if v is not None]
        if body.version is not None:
            chosen = [v for v in chosen if v.version == str(body.version)]
            if not chosen:
                raise NotFound(f"model {model} serves no version {body.version} here")
        else:
            chosen = chosen[:1]
        for loaded in chosen:
            loaded.healthy = False
            loaded.failure = f"quarantined by an administrator: {body.reason or 'no reason given'}"
        return {"model": model, "quarantined": sorted({v.version for v in chosen}), "reason": body.reason}

    def _router(self, model: str) -> tuple[Any, str]:
        router = self.g.routers.get(model)
        if router is None:
            raise NotFound(f"no model named {model!r} is served here")
        return router, self.g.config.models[model].registry_name or model

    # -- rate limits and the guard -----------------------------------------------------------------------------

    def limit(self, body: LimitBody) -> dict[str, Any]:
        bucket = LocalTokenBucket(body.rps, body.burst)
        self.overrides[body.subject] = LimitOverride(bucket, body.rps, body.burst, time.monotonic() + body.expires_in)
        return {"subject": body.subject, "rps": body.rps, "burst": body.burst, "expires_in": body.expires_in}

    def spend_override(self, identity: Identity) -> None:
        """Spend one token from the caller's override bucket, if it has one that has not expired."""
        override = self.overrides.get(identity.subject)
        if override is None:
            return
        if time.monotonic() >= override.expires_at:
            self.overrides.pop(identity.subject, None)
            return
        enforce(override.bucket, f"id:{identity.subject}", 1.0, what="incident rate limit")

    def guard(self, body: GuardBody) -> dict[str, Any]:
        names = [body.model] if body.model is not None else list(self.guards)
        if body.model is not None and body.model not in self.guards:
            raise NotFound(f"model {body.model!r} has no guard here")
        if not names:
            raise RequestValidationError("no model on this gateway is guarded", 422)
        out = {}
        for name in names:
            guard = self.guards[name].guard
            saved = self._normal_guard.setdefault(name, (guard.fallback, guard.threshold, guard.min_confidence))
            if body.mode == "normal":
                guard.fallback, guard.threshold, guard.min_confidence = saved
            else:
                guard.fallback = None  # a flagged input is refused, not answered with an abstention or a default
                if body.threshold is not None:
                    guard.threshold = body.threshold
                if body.min_confidence is not None:
                    guard.min_confidence = body.min_confidence
            self.guard_modes[name] = body.mode
            out[name] = {"mode": body.mode, "threshold": guard.threshold, "min_confidence": guard.min_confidence}
        return {"guards": out}

    def describe(self) -> dict[str, Any]:
        """The controls in force now (``GET /v1/admin/controls``)."""
        now = time.monotonic()
        return {
            "limits": {
                s: {"rps": o.rps, "burst": o.burst, "expires_in": round(o.expires_at - now, 1)}
                for s, o in self.overrides.items()
                if o.expires_at > now
            },
            "guards": {
                name: {
                    "mode": self.guard_modes.get(name, "normal"),
                    "threshold": g.guard.threshold,
                    "min_confidence": g.guard.min_confidence,
                    "fallback": g.guard.fallback.mode if g.guard.fallback else "reject",
                }
                for name, g in self.guards.items()
            },
            "models": {
                name: {
                    "version": r.primary.version,
                    "healthy": r.primary.healthy,
                    "failure": r.primary.failure or None,
                }
                for name, r in self.g.routers.items()
            },
        }

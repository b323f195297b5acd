"""The gateway's admin write API: containment actions an operator (or ``modelshield incident run``) takes at once.

Each action is a ``POST /v1/admin/...`` with a small JSON body, authenticated like any request, authorised by the
casbin policy (``keys.*`` for keys, ``registry.write`` for pins and quarantines, ``controls.*`` for limits and
the guard, ``incident.*`` for incident notes: the shipped policy gives them to ``admin``) and audited as
``admin.<action>`` with what was asked and what changed (never a key's secret).

Every change is fleet-wide: it is written to the shared store (``modelshield.serve.controls``), so every worker
of every replica on that store applies it, and the answer says so (``"scope": "fleet"`` and the ``generation``
that holds it; ``GET /v1/admin/controls`` lists the generation each worker has applied):

- key revocation and rotation: in the key store, refused by this process at once, by the others at once through
  the Redis revocation feed (with Redis configured), else on their next key-cache miss (within 5 s);
- pin / roll back: the registry pin, which every replica serves (unless its config pins a digest);
- quarantine, rate-limit overrides (with their expiry) and the guard's strict mode: rows of the controls table.

The worker that got the call applies the change before it answers; the others hear of it through Redis at once,
or find it at their next poll of the store's generation (``server.control_poll_seconds``, 2 s by default); a
replica that starts later applies the current state before it serves. With Redis, an override's bucket is shared by the whole fleet;
without it, each worker enforces the override on its own share of the traffic. A gateway with no store at all
keeps its controls in this process (``"scope": "process"``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from modelshield.core.errors import InputError, ModelShieldError
from modelshield.serve.errors import RequestValidationError, ServiceUnavailableError
from modelshield.serve.responses import NotFound
from modelshield.serve.validation import parse_json

if TYPE_CHECKING:
    from modelshield.serve.gateway import Gateway
    from modelshield.serve.guarding import GatewayGuard

MAX_ADMIN_BODY = 16 * 1024
ADMIN_BODY_DEPTH = 16  # flat objects, but an incident note's "detail" nests (far under the parser's recursion limit)
_ID = r"^[A-Za-z0-9._@:-]{1,128}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


B = TypeVar("B", bound=_Body)


class RevokeBody(_Body):
    """Revoke one key, or every usable key of a subject (a compromised or abusive identity)."""

    # the schema says what ``revoke`` checks: exactly one of the two is a string
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": [name], "properties": {name: {"type": "string"}}} for name in ("key_id", "subject")]
        }
    )

    key_id: Annotated[str, Field(pattern=_ID)] | None = None
    subject: Annotated[str, Field(pattern=_ID)] | None = None


class RotateBody(_Body):
    key_id: Annotated[str, Field(pattern=_ID)]
    overlap_seconds: Annotated[float, Field(ge=0, le=7 * 86400)] = 0.0


def _whole(value: Any) -> Any:
    """586.0 is version 586: JSON Schema's "integer" takes it, and Python's json.dumps writes a float so."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: a registry version number; the bound keeps it an SQLite/PostgreSQL integer (a larger one was a 500)
Version = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(_whole)]


class PinBody(_Body):
    """``version`` None: roll back to the newest servable version older than the one served now."""

    version: Version | None = None


class QuarantineBody(_Body):
    """``version`` None: the version served now."""

    version: Version | None = None
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

    @field_validator("detail")
    @classmethod
    def _auditable(cls, detail: dict[str, Any]) -> dict[str, Any]:
        """The note goes into the audit log, whose canonical JSON (RFC 8785) refuses integers past 2**53 and lone
        surrogates: refused here with 422, not at the append with a 503 that says the log is down."""
        from modelshield.audit.canonical import canonical_json

        try:
            canonical_json(detail)
        except InputError as exc:
            raise ValueError(str(exc).removeprefix("audit event ")) from None
        return detail


def parse_body(raw: bytes, model: type[B]) -> B:
    """The JSON body as ``model``: not plain JSON (nested deep, NaN, a repeated key) is 400, as for predict
    bodies; a field that does not fit is one 422 line naming it."""
    data = parse_json(raw or b"{}", ADMIN_BODY_DEPTH)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"])) or "body"
        raise RequestValidationError(f"{where}: {err['msg'].removeprefix('Value error, ')}", status=422) from None


class AdminActions:
    """The containment actions: each writes the fleet's control state, applies it here and announces it."""

    def __init__(self, gateway: Gateway, guards: dict[str, GatewayGuard]) -> None:
        if gateway.controls is None:
            raise RuntimeError("AdminActions before the gateway's fleet controls are set up")
        self.g = gateway
        self.guards = guards
        self.fleet = gateway.controls
        self.fleet.bind(guards)

    def _changed(self, gen: int) -> dict[str, Any]:
        """Announce generation ``gen`` to the other replicas, apply it here, and say so in the answer."""
        self.fleet.announce(gen)
        self.fleet.sync()
        return {"scope": self.fleet.store.scope, "generation": gen}

    # -- keys --------------------------------------------------------------------------------------------------

    def revoke(self, body: RevokeBody) -> dict[str, Any]:
        store = self._keys()
        if (body.key_id is None) == (body.subject is None):
            raise RequestValidationError("give key_id or subject (one of them)", status=422)
        try:
            if body.key_id is not None:
                store.revoke(body.key_id)
                return {"revoked": [body.key_id], "scope": "fleet"}
            assert body.subject is not None
            usable = [k.key_id for k in store.list(body.subject) if k.status() == "active"]
            for key_id in usable:
                store.revoke(key_id)
        except InputError as exc:
            raise NotFound(str(exc)) from None
        return {"subject": body.subject, "revoked": usable, "scope": "fleet"}

    def rotate(self, body: RotateBody) -> tuple[dict[str, Any], str]:
        """The audit summary and the successor's plaintext (for the response only)."""
        store = self._keys()
        from modelshield.serve.apikeys import UnknownKeyError, key_id_of

        try:
            plaintext = store.rotate(body.key_id, overlap_seconds=body.overlap_seconds)
        except UnknownKeyError as exc:
            raise NotFound(str(exc)) from None
        except InputError as exc:
            raise RequestValidationError(str(exc), status=422) from None
        return {
            "rotated": body.key_id,
            "new_key_id": key_id_of(plaintext),
            "overlap_s": body.overlap_seconds,
            "scope": "fleet",
        }, plaintext

    def _keys(self) -> Any:
        if self.g.api_keys is None:
            raise ServiceUnavailableError("this gateway has no API key store")
        return self.g.api_keys

    # -- model versions ----------------------------------------------------------------------------------------

    def pin(self, model: str, body: PinBody, actor: str) -> dict[str, Any]:
        """Pin ``version`` (or the previous one) in the registry: every replica serves it from now on."""
        router, registry_name = self._router(model)
        registry = self.g.registry
        if registry is None or self.g.config.models[model].path is not None:
            raise RequestValidationError(f"model {model} is served from a file; pinning needs the registry", 422)
        if self.g.config.models[model].digest is not None:
            raise RequestValidationError(f"the config pins model {model} to one digest; change the config", 422)
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
        key = (model, str(version))
        try:  # load and check it here first: a version no replica can serve is refused before it is pinned
            if key[1] != current.version:
                self.fleet.ready[key] = self.fleet.load(model, version)
            registry.pin(registry_name, version, actor=actor)
        except (ModelShieldError, OSError) as exc:
            self.fleet.discard(key)
            raise RequestValidationError(f"model {model} version {version}: {exc}", 422) from None
        # pinning a quarantined version again is the way back to serving it
        fleet = self._changed(self.fleet.store.drop("quarantine", [f"{model}:{version}"]))
        self.fleet.discard(key)  # still there if the apply did not take it (another pin came first)
        served = router.primary
        return {
            "model": model,
            "from_version": current.version,
            "version": served.version,
            "digest": served.digest,
            **fleet,
        }

    def quarantine(self, model: str, body: QuarantineBody) -> dict[str, Any]:
        """Stop serving a version on every replica: requests it would answer get 503 (a canary's go to the
        primary). Pin a version to serve again."""
        router, _ = self._router(model)
        chosen = [v for v in (router.primary, router.canary, router.shadow) if v is not None]
        if body.version is not None:
            chosen = [v for v in chosen if v.version == str(body.version)]
            if not chosen:
                raise NotFound(f"model {model} serves no version {body.version} here")
        else:
            chosen = chosen[:1]
        versions = sorted({v.version for v in chosen})
        reason = body.reason or "no reason given"
        gen = self.fleet.store.put("quarantine", {f"{model}:{v}": {"reason": reason} for v in versions})
        return {"model": model, "quarantined": versions, "reason": body.reason, **self._changed(gen)}

    def _router(self, model: str) -> tuple[Any, str]:
        router = self.g.routers.get(model)
        if router is None:
            raise NotFound(f"no model named {model!r} is served here")
        return router, self.g.config.models[model].registry_name or model

    # -- rate limits and the guard -----------------------------------------------------------------------------

    def limit(self, body: LimitBody) -> dict[str, Any]:
        value = {"rps": body.rps, "burst": body.burst}
        gen = self.fleet.store.put("limit", {body.subject: value}, expires_at=time.time() + body.expires_in)
        return {"subject": body.subject, **value, "expires_in": body.expires_in, **self._changed(gen)}

    def guard(self, body: GuardBody) -> dict[str, Any]:
        names = [body.model] if body.model is not None else list(self.guards)
        if body.model is not None and body.model not in self.guards:
            raise NotFound(f"model {body.model!r} has no guard here")
        if not names:
            raise NotFound("no model on this gateway is guarded")
        if body.mode == "normal":
            gen = self.fleet.store.drop("guard", names)
        else:
            value = {"mode": "strict", "threshold": body.threshold, "min_confidence": body.min_confidence}
            gen = self.fleet.store.put("guard", dict.fromkeys(names, value))
        fleet = self._changed(gen)
        out = {}
        for name in names:
            guard = self.guards[name].guard
            mode = self.fleet.guard_mode(name)
            out[name] = {"mode": mode, "threshold": guard.threshold, "min_confidence": guard.min_confidence}
        return {"guards": out, **fleet}

    def describe(self) -> dict[str, Any]:
        """The controls in force on this worker (``GET /v1/admin/controls``) and what every worker has applied."""
        now = time.time()
        return {
            "limits": {
                s: {"rps": o.rps, "burst": o.burst, "expires_in": round(o.expires_at - now, 1)}
                for s, o in self.fleet.overrides.items()
                if o.expires_at > now
            },
            "guards": {
                name: {
                    "mode": self.fleet.guard_mode(name),
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
            "fleet": self.fleet.describe(),
        }

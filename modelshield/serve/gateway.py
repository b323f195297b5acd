"""The controls and models one gateway serves with: stores, authentication, policy, limits, audit, versions.

``Gateway.start(config)`` opens everything once and refuses to start on any error; the per-request
pipeline (``modelshield.serve.pipeline``) calls its methods. Nothing here blocks the event loop for
I/O: the audit append is awaited (group-committed by the writer thread), Redis rate limits, audit
verification and registry re-hashes run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from modelshield.core.errors import InputError
from modelshield.serve.config import ModelSource, ServeConfig
from modelshield.serve.errors import AuthorizationError, GatewayError, RateLimitedError, ServiceUnavailableError
from modelshield.serve.identity import ANONYMOUS, Identity
from modelshield.serve.metrics import GatewayMetrics
from modelshield.serve.ratelimit import RateLimiter, enforce
from modelshield.serve.responses import error_response
from modelshield.serve.routing import Router
from modelshield.serve.runtime import LoadedModel, load_source, rehash_forever
from modelshield.serve.sessions import Sessions

if TYPE_CHECKING:  # the stores and controls are imported where they are built: each gateway loads only what it uses
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from modelshield.audit import AuditLog
    from modelshield.registry import Registry
    from modelshield.serve.admin import AdminActions
    from modelshield.serve.apikeys import ApiKeyStore
    from modelshield.serve.auth import Authenticator
    from modelshield.serve.controls import FleetControls
    from modelshield.serve.extraction import ExtractionMonitor
    from modelshield.serve.live import GatewayLive
    from modelshield.serve.policy import PolicyEngine
    from modelshield.serve.ratelimit import DailyQuota

log = logging.getLogger("modelshield.serve")


class Gateway:
    """The controls and models one app serves with; built once by ``Gateway.start`` from the config."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = GatewayMetrics()
        self.routers: dict[str, Router[LoadedModel]] = {}
        self.registry: Registry | None = None
        self.api_keys: ApiKeyStore | None = None
        self.authenticator: Authenticator | None = None
        self.policy: PolicyEngine | None = None
        self.limiters: list[tuple[str, RateLimiter]] = []
        self.quota: DailyQuota | None = None
        self.audit_log: AuditLog | None = None
        self.audit_public_key: Ed25519PublicKey | None = None
        self.extraction: ExtractionMonitor | None = None
        self.remote_limits = False
        self.live: GatewayLive | None = None
        self.sessions = Sessions()
        #: what an admin call changed at run time (``modelshield.serve.admin``); set by ``create_app``
        self.admin: AdminActions | None = None
        #: the fleet's control state (quarantines, overrides, guard modes, pins) as this worker applies it
        self.controls: FleetControls | None = None
        self.rehashed: list[LoadedModel] = []
        self.replaced: list[LoadedModel] = []

    @classmethod
    def start(cls, config: ServeConfig) -> Gateway:
        """Open the stores, build the controls, load and verify every model version; refuse to start on any error."""
        g = cls(config)
        for setting in config.insecure_settings():
            log.warning("INSECURE: %s — this gateway runs with a security control off", setting)
        try:
            g._open_stores()
            g._build_controls()
            g._load_models()
            g._open_controls()
        except BaseException:
            g.close()
            raise
        return g

    def _open_stores(self) -> None:
        c = self.config
        if not c.audit.insecure_disabled:
            from modelshield.audit import AuditLog
            from modelshield.audit.keys import load_private_key, load_public_key

            key = load_private_key(c.audit.signing_key_file) if c.audit.signing_key_file else None
            if c.audit.public_key_file is not None:
                self.audit_public_key = load_public_key(c.audit.public_key_file)
            elif key is not None:
                self.audit_public_key = key.public_key()
            self.audit_log = AuditLog.open(
                c.database_url(),
                signing_key=key,
                checkpoint_every=c.audit.checkpoint_every,
                checkpoint_seconds=c.audit.checkpoint_seconds,
                witness=c.audit.witness_file,
                durability=c.audit.durability,
            )
        if any(
            r.path is None or (r.canary and r.canary.path is None) or (r.shadow and r.shadow.path is None)
            for r in c.models.values()
        ):
            from modelshield.registry import Registry

            self.registry = Registry.open(c.store_url(), audit=self.audit_log)

    def _build_controls(self) -> None:
        c = self.config
        if not c.auth.insecure_disabled:
            from modelshield.serve.auth import Authenticator

            jwt = mtls = None
            if c.auth.api_keys:
                from modelshield.serve.apikeys import ApiKeyStore

                redis_url = c.redis_url()
                feed = None
                if redis_url:
                    from modelshield.serve.apikeys import RevocationFeed, revocation_channel

                    feed = RevocationFeed(redis_url, revocation_channel(c.rate_limits.redis_prefix))
                self.api_keys = ApiKeyStore.open(
                    c.store_url(), pepper_file=c.auth.api_key_pepper_file, revocations=feed
                )
                foreign = self.api_keys.foreign_keys()
                if foreign:
                    log.error(
                        "%d usable API keys were made under another pepper than this gateway's (id %s) and "
                        "will be refused: is api_key_pepper_file the file the keys were issued with?",
                        foreign,
                        self.api_keys.pepper_id,
                    )
            if c.auth.jwks_file is not None:
                from modelshield.serve.jwt_auth import JwtVerifier

                jwt = JwtVerifier(c.auth.jwks_file, issuer=c.auth.issuer or "", audience=c.auth.audience or "")
            if c.auth.mtls_ca_file is not None:
                from modelshield.serve.mtls import MtlsConfig

                mtls = MtlsConfig(
                    role_map=c.auth.mtls_role_map,
                    tenant_map=c.auth.mtls_tenant_map,
                    attributes_map=c.auth.mtls_attributes_map,
                    required=c.auth.mtls_required,
                )
            self.authenticator = Authenticator(api_keys=self.api_keys, jwt=jwt, mtls=mtls)
        if not c.policy.insecure_disabled:
            from modelshield.serve.policy import PolicyEngine

            files = {"model_conf": c.policy.model_file, "policy": c.policy.policy_file}
            self.policy = PolicyEngine.from_files(**{k: v for k, v in files.items() if v is not None})
        if not c.rate_limits.insecure_disabled:
            self._build_limiters()
            if c.rate_limits.extraction_signal:
                from modelshield.serve.extraction import ExtractionMonitor

                self.extraction = ExtractionMonitor.from_config(c)

    def _build_limiters(self) -> None:
        from modelshield.serve.ratelimit import DailyQuota, LocalTokenBucket, RedisTokenBucket

        rl, redis_url = self.config.rate_limits, self.config.redis_url()

        def bucket(rate: float, burst: float) -> RateLimiter:
            if redis_url:
                return RedisTokenBucket(redis_url, rate, burst, fail_open=rl.fail_open, prefix=f"{rl.redis_prefix}:rl:")
            return LocalTokenBucket(rate, burst)

        self.remote_limits = bool(redis_url)
        self.limiters = [
            ("identity", bucket(rl.per_identity_rps, rl.per_identity_burst)),
            ("model", bucket(rl.per_model_rps, rl.per_model_burst)),
        ]
        if rl.daily_quota is not None:
            self.quota = DailyQuota(
                rl.daily_quota, redis_url=redis_url, fail_open=rl.fail_open, prefix=f"{rl.redis_prefix}:quota:"
            )

    def _load_models(self) -> None:
        from modelshield.serve.controls import serving_version

        for name, route in self.config.models.items():
            source: ModelSource = route
            if route.path is None and self.registry is not None:  # the registry's pin wins over the config's version
                version = serving_version(route, self.registry.list(route.registry_name or name))
                source = route.model_copy(update={"version": version})
            primary = load_source(name, source, self.registry)
            canary_source: ModelSource | None = route.canary
            percent = route.canary.percent if route.canary else 0.0
            if canary_source is None and route.path is None and route.version is None:
                canary_source, percent = self._registry_canary(route.registry_name or name)
            canary = load_source(name, canary_source, self.registry) if canary_source else None
            shadow = load_source(name, route.shadow, self.registry) if route.shadow else None
            for candidate in (canary, shadow):
                if candidate is not None and candidate.signature != primary.signature:
                    raise InputError(
                        f"model {name}: candidate version {candidate.version} takes different inputs "
                        f"({candidate.signature}) than the primary ({primary.signature})"
                    )
            self.routers[name] = Router(
                name,
                primary,
                canary=canary,
                canary_percent=percent,
                sticky=route.canary.sticky if route.canary else "identity",
                shadow=shadow,
                shadow_percent=route.shadow.percent if route.shadow else 0.0,
            )

    def _open_controls(self) -> None:
        """The fleet's control state: in the shared store when this gateway uses one, else in this process."""
        from modelshield.serve.controls import FleetControls, MemoryControls, StoreControls

        c = self.config
        shared = self.audit_log is not None or self.api_keys is not None or self.registry is not None
        store = StoreControls.open(c.store_url()) if shared else MemoryControls()
        feed = None
        if shared and c.redis_url():
            from modelshield.serve.feed import RedisFeed, controls_channel

            feed = RedisFeed(c.redis_url() or "", controls_channel(c.rate_limits.redis_prefix))
        self.controls = FleetControls(self, store, poll_seconds=c.server.control_poll_seconds, feed=feed)

    def _registry_canary(self, registry_name: str) -> tuple[ModelSource | None, float]:
        """A canary release promoted in the registry (``registry promote --canary P``) when the config names none."""
        if self.registry is None:
            return None, 0.0
        mv = self.registry.canary(registry_name)
        if mv is None:
            return None, 0.0
        return ModelSource(registry_name=registry_name, version=mv.version), float(mv.canary_percent or 0.0)

    # -- per request -------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Identity:
        if self.authenticator is None:
            return ANONYMOUS
        peer = None
        if self.authenticator.mtls is not None:
            from modelshield.serve.mtls import peer_cert_from_scope

            peer = peer_cert_from_scope(request.scope)
        try:
            return self.authenticator.authenticate(request.headers, peer)
        except GatewayError:
            self.metrics.denials.labels("authn").inc()
            raise

    def authorize(
        self,
        identity: Identity,
        action: str,
        resource: dict[str, str],
        purpose: str,
        record: dict[str, Any] | None = None,
    ) -> None:
        """Ask the policy engine; the decision's rule and policy version go into the audit record."""
        if self.policy is None:
            return
        decision = self.policy.decide(identity, action, resource, {"purpose": purpose})
        if record is not None:
            record["policy"] = decision.audit_fields()
        if not decision.allowed:
            self.metrics.denials.labels("authz").inc()
            raise AuthorizationError(f"not allowed to {action}: {decision.reason}")

    async def rate_limit(self, identity: Identity, model: str | None, cost: float = 1.0, paid: float = 0.0) -> None:
        """Spend ``cost`` tokens per identity and per model (``paid``: what this request spent in an earlier hit, for
        the Retry-After; an incident override is charged once, on the first); Redis round trips run off the loop."""
        if self.remote_limits:
            await asyncio.to_thread(self._rate_limit, identity, model, cost, paid)
        else:
            self._rate_limit(identity, model, cost, paid)

    def _rate_limit(self, identity: Identity, model: str | None, cost: float = 1.0, paid: float = 0.0) -> None:
        for scope, limiter in self.limiters:
            if scope == "model" and model is None:
                continue
            key = f"id:{identity.subject}" if scope == "identity" else f"model:{model}"
            self._spend(scope, limiter, key, cost, paid)
        if not paid and self.controls is not None and self.controls.overrides:
            try:
                self.controls.spend_override(identity)
            except RateLimitedError:
                self.metrics.rate_limited.labels("identity").inc()
                raise

    async def charge_quota(self, identity: Identity, model: str, samples: int) -> None:
        """Spend ``samples`` from the caller's daily quota for ``model``."""
        if self.quota is None:
            return
        args = ("daily_quota", self.quota, f"{identity.subject}:{model}", float(samples))
        if self.remote_limits:
            await asyncio.to_thread(self._spend, *args)
        else:
            self._spend(*args)

    def _spend(self, scope: str, limiter: RateLimiter, key: str, cost: float, paid: float = 0.0) -> None:
        try:
            enforce(limiter, key, cost, what=f"{scope.replace('_', ' ')} limit", paid=paid)
        except RateLimitedError:
            self.metrics.rate_limited.labels(scope).inc()
            raise

    def choose(self, router: Router[LoadedModel], *, request_id: str, subject: str) -> LoadedModel:
        """The version that answers; a canary that failed its integrity check hands its share back to the primary."""
        loaded = router.choose(request_id=request_id, subject=subject)
        if not loaded.healthy and loaded is not router.primary:
            loaded = router.primary
        if not loaded.healthy:
            raise ServiceUnavailableError(
                f"model {loaded.name} version {loaded.version} failed its integrity check and is not served"
            )
        return loaded

    async def audit(self, record: dict[str, Any], request_id: str, response: Response) -> Response:
        """Append ``record`` durably; if that fails, the client gets 503 instead of ``response``."""
        if self.audit_log is None:
            return response
        started = time.perf_counter()
        try:
            await self.audit_log.append_async(record)
        except Exception as exc:  # an unaudited answer is never sent, whatever broke
            log.error("audit append failed for request %s: %s", request_id, " ".join(str(exc).split()))
            return error_response(ServiceUnavailableError("the audit log is unavailable"), request_id)
        finally:
            self.metrics.audit_append.observe(time.perf_counter() - started)
        return response

    def shadow_observer(self, name: str) -> Callable[[int, int], None]:
        agreed_c, disagreed_c = self.metrics.shadow.labels(name, "agree"), self.metrics.shadow.labels(name, "disagree")

        def observe(n: int, agreed: int) -> None:
            agreed_c.inc(agreed)
            disagreed_c.inc(n - agreed)

        return observe

    async def watch_extraction(
        self, identity: Identity, model: str, x: np.ndarray, probs: np.ndarray, address: str | None = None
    ) -> None:
        """After the response: score the caller's recent queries (and its tenant's and address's, when grouped); for
        each window that newly crosses the threshold, count it and write a ``security.extraction`` audit event."""
        monitor = self.extraction
        if monitor is None:
            return
        raised = await asyncio.to_thread(  # ~1 ms a query: off the event loop, which other requests share
            monitor.watch, identity.subject, x, probs, model=model, tenant=identity.tenant, address=address
        )
        for signal in raised:
            self.metrics.extraction_flags.labels(model).inc()
            if self.live is not None:
                self.live.observe_extraction(model)
            log.warning(
                "extraction signal for %s %s on model %s: score %.2f", signal.scope, signal.key, model, signal.score
            )
            if self.audit_log is None:
                continue
            try:
                await self.audit_log.append_async(
                    {
                        "time": datetime.now(UTC).isoformat(),
                        "action": "security.extraction",
                        "actor": identity.audit_actor(),
                        "model": model,
                        "decision": "flag",
                        "reason": signal.reason,
                        "extraction": signal.audit_fields(),
                    }
                )
            except Exception as exc:  # after the response: raising would cut the client's keep-alive connection
                monitor.forget_flag(signal)  # so the event is written on the next query, once the log works
                log.error("audit of the extraction signal for %s failed: %s", signal.key, " ".join(str(exc).split()))

    # -- background and admin ----------------------------------------------------------------------

    def background_tasks(self) -> list[asyncio.Task[None]]:
        self.rehashed[:0] = [v for r in self.routers.values() for v in (r.primary, r.canary, r.shadow) if v is not None]
        loop = asyncio.get_running_loop()
        every = self.config.server.rehash_seconds
        tasks = [loop.create_task(rehash_forever(self.rehashed, every, self.integrity_failed))]
        if self.live is not None:
            tasks.append(loop.create_task(self.live.run_forever()))
        if self.controls is not None:
            tasks.append(loop.create_task(self.controls.run_forever()))
        return tasks

    async def integrity_failed(self, loaded: LoadedModel) -> None:
        """A served version's bytes changed: count it and write a security event to the audit log."""
        self.metrics.integrity_failures.labels(loaded.name, loaded.version).inc()
        if self.audit_log is not None:
            await self.audit_log.append_async(
                {
                    "time": datetime.now(UTC).isoformat(),
                    "action": "security.model_integrity",
                    "actor": {"subject": "modelshield-gateway", "method": "system", "tenant": None},
                    "model": loaded.name,
                    "model_version": loaded.version,
                    "model_digest": loaded.digest,
                    "decision": "deny",
                    "reason": loaded.failure,
                    "status_code": 503,
                }
            )

    def visible_models(self, identity: Identity, purpose: str) -> list[dict[str, Any]]:
        out = []
        for name, router in self.routers.items():
            route = self.config.models[name]
            try:
                self.authorize(
                    identity,
                    "predict",
                    {"model": name, "sensitivity": route.sensitivity, "tenant": route.tenant or ""},
                    purpose,
                )
            except AuthorizationError:
                continue
            out.append({**router.primary.describe(), "route": name})
        return out

    def describe_routes(self) -> dict[str, Any]:
        routes = {}
        for name, r in self.routers.items():
            routes[name] = {
                "primary": r.primary.describe(),
                "canary": {**r.canary.describe(), "percent": r.canary_percent, "sticky": r.sticky}
                if r.canary
                else None,
                "shadow": {
                    **r.shadow.describe(),
                    "percent": r.shadow_percent,
                    "compared": r.stats.compared,
                    "agreement": r.stats.agreement,
                    "failed": r.stats.failed,
                    "skipped": r.stats.skipped,
                }
                if r.shadow
                else None,
            }
        return {"routes": routes}

    def registry_listing(self) -> dict[str, Any]:
        if self.registry is None:
            return {"versions": []}
        return {"versions": [_jsonable(mv.to_dict()) for mv in self.registry.list()]}

    def verify_audit(self) -> dict[str, Any]:
        if self.audit_log is None or self.audit_public_key is None:
            raise ServiceUnavailableError("audit verification needs the audit log and its public key")
        report = self.audit_log.verify(self.audit_public_key, witness=self.config.audit.witness_file)
        return {"ok": report.ok, "summary": report.summary(), **_jsonable(asdict(report))}

    def close(self) -> None:
        for router in self.routers.values():
            for v in (router.primary, router.canary, router.shadow):
                if v is not None:
                    v.executor.shutdown(wait=True)
        for v in self.replaced:
            v.executor.shutdown(wait=True)
        for resource in (self.controls, self.audit_log, self.api_keys, self.registry):
            if resource is not None and hasattr(resource, "close"):
                resource.close()


def _jsonable(value: Any) -> Any:
    """Dataclass dumps with paths, tuples and datetimes made JSON-friendly."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)

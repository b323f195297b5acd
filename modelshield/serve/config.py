"""The gateway's configuration: one TOML file, secure unless it says otherwise, loudly.

Authentication, authorisation, rate limits and the audit log are on by default. Each can only be
turned off by an explicit ``insecure_disabled = true`` in its table, and every such switch is
returned by ``ServeConfig.insecure_settings()`` so the server logs it at start-up. The database
and Redis URLs can come from ``MODELSHIELD_DB_URL`` and ``MODELSHIELD_REDIS_URL``, or from the files that
``MODELSHIELD_DB_URL_FILE`` and ``MODELSHIELD_REDIS_URL_FILE`` name (a mounted Secret: a URL with a password
never has to sit in the environment); the config file wins when it names one.

A minimal file::

    [models.demo]
    version = 1                      # a registered version (pinned by its digest)

    [auth]
    api_keys = true

    [audit]
    signing_key_file = "audit-signing.pem"
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelshield.core.errors import InputError

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_DIGEST = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_model_name(name: str) -> str:
    """Refuse a model name that could escape a folder or a URL path segment."""
    if not MODEL_NAME.match(name) or ".." in name:
        raise ValueError(f"model name {name!r} must match {MODEL_NAME.pattern} (and contain no '..')")
    return name


class ModelSource(_Strict):
    """Where one model version comes from: the registry (name + version) or a file pinned by digest.

    Registry versions are verified by the registry (manifest re-hash + signature); a file needs a
    ``digest`` (sha256 of its bytes), so what is served is exactly what was reviewed.
    """

    registry_name: str | None = None
    version: int | None = Field(default=None, ge=1)
    path: Path | None = None
    digest: str | None = None
    arch: str | None = None
    arch_kwargs: dict[str, object] | None = None
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = Field(default=None, ge=2)
    bounds: tuple[float, float] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None

    @field_validator("registry_name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else check_model_name(v)

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not _DIGEST.match(v):
            raise ValueError("digest must be 64 lowercase hex characters (sha256)")
        return v.removeprefix("sha256:")

    @model_validator(mode="after")
    def _path_needs_digest(self) -> ModelSource:
        if self.path is not None and self.digest is None:
            raise ValueError(f"model file {self.path} needs digest = '<sha256>' (run: sha256sum {self.path})")
        if self.path is not None and self.version is not None:
            raise ValueError("give either version (registry) or path (file), not both")
        return self


class CanaryRoute(ModelSource):
    """A candidate that answers ``percent`` of the traffic, chosen deterministically per request or identity."""

    percent: float = Field(ge=0.0, le=100.0)
    sticky: Literal["identity", "request"] = "identity"


class ShadowRoute(ModelSource):
    """A candidate that sees a copy of ``percent`` of the traffic in the background; its answers are never returned."""

    percent: float = Field(default=100.0, ge=0.0, le=100.0)


def _dataset_exists(spec: str | None) -> str | None:
    """Refuse a dataset spec whose file(s) are missing at parse time, before a model is loaded to calibrate on it."""
    if spec is None or spec.startswith("sklearn:") or Path(spec).exists():
        return spec
    missing = [p for p in spec.split(",") if not Path(p).exists()]
    if missing:
        raise ValueError(f"{missing[0]} does not exist")
    return spec


class GuardConfig(_Strict):
    """The adversarial-input Guard for one model: a detector fitted and calibrated at start-up, and what a
    flagged input gets (``reject`` → 422, ``abstain`` → label −1, ``default`` → ``default_label``)."""

    detector: Literal["feature-squeezing", "max-softmax", "energy", "mahalanobis", "lid"]
    detector_options: dict[str, int | float | bool] = Field(default_factory=dict)  # e.g. {bits = 2}
    calibration_data: str = Field(min_length=1, description="a dataset spec: sklearn:digits:train, data.npz, ...")
    calibration_samples: int = Field(default=2000, ge=20)
    fpr: float = Field(default=0.01, gt=0.0, lt=1.0)
    min_confidence: float | None = Field(default=None, gt=0.0, le=1.0)
    fallback: Literal["reject", "abstain", "default"] = "reject"
    default_label: int | None = Field(default=None, ge=0)

    _calibration_exists = field_validator("calibration_data")(_dataset_exists)

    @model_validator(mode="after")
    def _default_needs_label(self) -> GuardConfig:
        if (self.fallback == "default") != (self.default_label is not None):
            raise ValueError("fallback = 'default' and default_label = <class index> go together")
        return self


class GuardTable(GuardConfig):
    """The top-level ``[guard]`` table: one Guard setting for the models listed (all models when empty)."""

    models: tuple[str, ...] = ()


class MonitorConfig(_Strict):
    """Live monitoring of one model: its recent inputs tested for drift against a reference sketch, its outputs
    watched by CUSUM / Page–Hinkley, every ``check_seconds`` off the request path (docs/serve.md)."""

    # the reference: a sketch file, and/or data to build it from; else the sketch registered with the model version
    sketch_file: str | None = None  # from `modelshield monitor sketch` over the flattened inputs (x[0], x[1], ...)
    reference_data: str | None = None  # a dataset spec: sketch and reference outputs are built from it at start-up
    reference_samples: int = Field(default=2000, ge=100)
    window: int = Field(default=1000, ge=50, le=1_000_000)  # the most recent inputs kept and tested
    min_rows: int = Field(default=100, ge=20)  # no drift verdict on fewer
    check_seconds: float = Field(default=5.0, gt=0.0)
    test: Literal["auto", "ks", "chi2", "psi", "js", "wasserstein"] = "auto"
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    mmd: bool = False  # the multivariate permutation test: catches joint shifts, costs ~0.5 s a check
    output_window: int = Field(default=50, ge=1)
    bucket_seconds: float = Field(default=60.0, ge=1.0)  # width of the correlation windows
    buckets: int = Field(default=120, ge=2, le=10_000)  # how many of them are kept

    _reference_exists = field_validator("reference_data")(_dataset_exists)

    @model_validator(mode="after")
    def _window_fits(self) -> MonitorConfig:
        if self.min_rows > self.window:
            raise ValueError(f"min_rows ({self.min_rows}) is larger than the window ({self.window})")
        return self


class MonitorTable(MonitorConfig):
    """The top-level ``[monitor]`` table: one monitoring setting for the models listed (all models when empty)."""

    models: tuple[str, ...] = ()


class ModelRoute(ModelSource):
    """One public model name: its primary version, attributes the policy sees, and optional canary/shadow/guard."""

    sensitivity: Literal["public", "internal", "confidential", "restricted"] = "internal"
    tenant: str | None = None
    canary: CanaryRoute | None = None
    shadow: ShadowRoute | None = None
    guard: GuardConfig | None = None
    monitor: MonitorConfig | None = None


class AuthConfig(_Strict):
    """Who may call: API keys (from the store), JWT bearer tokens (JWKS file) and/or mutual TLS."""

    api_keys: bool = True
    api_key_pepper_file: Path | None = None
    jwks_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    mtls_ca_file: Path | None = None
    mtls_required: bool = True
    mtls_role_map: dict[str, list[str]] = Field(default_factory=dict)
    mtls_tenant_map: dict[str, str] = Field(default_factory=dict)
    mtls_attributes_map: dict[str, dict[str, str]] = Field(default_factory=dict)  # e.g. clearance per pattern
    insecure_disabled: bool = False

    @model_validator(mode="after")
    def _jwt_complete(self) -> AuthConfig:
        if self.jwks_file is not None and (not self.issuer or not self.audience):
            raise ValueError("JWT authentication needs issuer and audience next to jwks_file")
        if self.mtls_ca_file is not None and not self.mtls_role_map:
            raise ValueError(
                "mutual TLS needs mtls_role_map (certificate name pattern -> roles); none maps to deny-all"
            )
        if not self.insecure_disabled and not (self.api_keys or self.jwks_file or self.mtls_ca_file):
            raise ValueError("no authentication method is on; enable one or set insecure_disabled = true")
        return self


class PolicyConfig(_Strict):
    """The casbin model and policy files (reloaded when they change); None = the packaged defaults."""

    model_file: Path | None = None
    policy_file: Path | None = None
    insecure_disabled: bool = False


class RateLimitConfig(_Strict):
    """Token buckets per identity and per model, a daily quota per identity and model; Redis when shared.

    ``cost = "samples"`` (default): a predict request spends one token per input in its batch, so batching does
    not multiply the queries a caller gets (model extraction and query-based evasion batch to do exactly that);
    a batch larger than a bucket's burst is refused with 413. ``"requests"``: one token per request. The daily
    quota always counts samples.
    """

    cost: Literal["samples", "requests"] = "samples"
    per_identity_rps: float = Field(default=50.0, gt=0)
    per_identity_burst: float = Field(default=256.0, ge=1)
    per_model_rps: float = Field(default=2000.0, gt=0)
    per_model_burst: float = Field(default=4000.0, ge=1)
    daily_quota: int | None = Field(default=100_000, ge=1)
    redis_url: str | None = None
    #: the namespace of every Redis key and channel this gateway uses (buckets, quotas, revocations, controls):
    #: deployments sharing one Redis give each its own
    redis_prefix: str = Field(default="modelshield", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    fail_open: bool = False
    extraction_signal: bool = True
    #: model name → a dataset spec of honest inputs (``sklearn:digits:train``, an .npz…): queries far from all of
    #: them count as off-distribution (Knockoff-style); a model without one uses its ``monitor.reference_data``
    extraction_reference: dict[str, str] = Field(default_factory=dict)
    #: the extraction signal also pools each tenant's keys and/or each client address's (docs/extraction.md)
    extraction_group_by: tuple[Literal["tenant", "address"], ...] = ("tenant",)
    insecure_disabled: bool = False


class ValidationLimits(_Strict):
    """Limits checked before any model code runs."""

    max_body_bytes: int = Field(default=1 << 20, ge=64)
    max_batch: int = Field(default=256, ge=1)
    max_depth: int = Field(default=8, ge=2, le=64)
    #: a body must arrive within this many seconds of its request's headers, else 408 (a stalled upload would
    #: hold its connection and its rate-limit token for as long as the client likes)
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)


class AuditConfig(_Strict):
    """Where each request's decision is written, durably, before the response leaves.

    ``durability = "fsync"`` (default): the record is on disk before the response. ``"process"``: it is
    committed to the OS (SQLite synchronous=NORMAL in WAL) or the PostgreSQL server (synchronous_commit=off) —
    it survives ``kill -9`` of the gateway, not a power loss — for about an fsync less latency per request.
    """

    db_url: str | None = None
    signing_key_file: Path | None = None
    public_key_file: Path | None = None
    witness_file: Path | None = None
    checkpoint_every: int = Field(default=1000, ge=1)
    checkpoint_seconds: float = Field(default=5.0, gt=0)
    durability: Literal["fsync", "process"] = "fsync"
    insecure_disabled: bool = False


class LoggingConfig(_Strict):
    """Structured JSON logs; the masking rules (``modelshield.serve.masking``) extend or disable the built-in ones."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    extra_fields: tuple[str, ...] = ()
    extra_patterns: dict[str, str] = Field(default_factory=dict)
    disable: tuple[str, ...] = ()


class ServerConfig(_Strict):
    """Where to listen; TLS (and client certificates for mTLS) when cert and key are given."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    rehash_seconds: float = Field(default=300.0, gt=0)
    store_url: str | None = None
    #: how often each worker polls the store for fleet control changes (the bound when Redis is off or lost)
    control_poll_seconds: float = Field(default=2.0, gt=0, le=300)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self


class ServeConfig(_Strict):
    """Everything ``modelshield serve`` needs; see the module docstring for the file format."""

    models: dict[str, ModelRoute]
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    validation: ValidationLimits = Field(default_factory=ValidationLimits)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    guard: GuardTable | None = None
    monitor: MonitorTable | None = None

    @field_validator("models")
    @classmethod
    def _routes(cls, v: dict[str, ModelRoute]) -> dict[str, ModelRoute]:
        if not v:
            raise ValueError("serve at least one model: add a [models.<name>] table")
        for name in v:
            check_model_name(name)
        return v

    @model_validator(mode="after")
    def _mtls_needs_tls(self) -> ServeConfig:
        if self.auth.mtls_ca_file is not None and self.server.tls_cert_file is None:
            raise ValueError("auth.mtls_ca_file needs server.tls_cert_file and server.tls_key_file")
        return self

    @model_validator(mode="after")
    def _guarded_models_exist(self) -> ServeConfig:
        for table, listed in (("guard", self.guard), ("monitor", self.monitor)):
            unknown = sorted(set(listed.models) - set(self.models)) if listed else []
            if unknown:
                raise ValueError(f"{table}.models names {', '.join(unknown)}, which no [models.<name>] table serves")
        return self

    def guards(self) -> dict[str, GuardConfig]:
        """The Guard setting of each guarded model: its own ``[models.<name>.guard]``, else the ``[guard]`` table."""
        out: dict[str, GuardConfig] = {}
        for name, route in self.models.items():
            if route.guard is not None:
                out[name] = route.guard
            elif self.guard is not None and (not self.guard.models or name in self.guard.models):
                out[name] = GuardConfig(**self.guard.model_dump(exclude={"models"}))
        return out

    def monitors(self) -> dict[str, MonitorConfig]:
        """The live-monitoring setting of each monitored model, as ``guards()`` for the guard."""
        out: dict[str, MonitorConfig] = {}
        for name, route in self.models.items():
            if route.monitor is not None:
                out[name] = route.monitor
            elif self.monitor is not None and (not self.monitor.models or name in self.monitor.models):
                out[name] = MonitorConfig(**self.monitor.model_dump(exclude={"models"}))
        return out

    def insecure_settings(self) -> list[str]:
        """The controls this configuration turns off, for a loud start-up warning."""
        off = [
            f"{name}.insecure_disabled"
            for name, section in (
                ("auth", self.auth),
                ("policy", self.policy),
                ("rate_limits", self.rate_limits),
                ("audit", self.audit),
            )
            if section.insecure_disabled
        ]
        if self.rate_limits.fail_open and not self.rate_limits.insecure_disabled:
            off.append("rate_limits.fail_open (requests pass unlimited while Redis is down)")
        if self.server.host not in ("127.0.0.1", "::1", "localhost") and self.server.tls_cert_file is None:
            off.append(f"server.host={self.server.host} without TLS (credentials travel in clear text)")
        if self.audit.durability != "fsync" and not self.audit.insecure_disabled:
            off.append(f"audit.durability={self.audit.durability} (records survive a gateway crash, not a power loss)")
        if not self.auth.insecure_disabled and self.audit.signing_key_file is None and not self.audit.insecure_disabled:
            off.append("audit.signing_key_file unset (the audit log is hash-chained but its checkpoints are unsigned)")
        return off

    def database_url(self) -> str | None:
        """The audit database: the file's value, else ``MODELSHIELD_DB_URL[_FILE]``, else the store default (None)."""
        return self.audit.db_url or env_setting("MODELSHIELD_DB_URL")

    def redis_url(self) -> str | None:
        """Redis for shared rate limits: the file's value, else ``MODELSHIELD_REDIS_URL[_FILE]``, else in-process."""
        return self.rate_limits.redis_url or env_setting("MODELSHIELD_REDIS_URL")

    def store_url(self) -> str | None:
        """The store holding API keys and the registry: server.store_url, else the audit database."""
        return self.server.store_url or self.database_url()


def env_setting(name: str) -> str | None:
    """``$NAME``, else the contents of the file ``$NAME_FILE`` names (a Secret mounted as a file), else None."""
    value, file = os.environ.get(name), os.environ.get(f"{name}_FILE")
    if value and file:
        raise InputError(f"both ${name} and ${name}_FILE are set", hint="set one of them")
    if value or not file:
        return value or None
    try:
        text = Path(file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"${name}_FILE names {file}, which cannot be read ({type(exc).__name__})") from None
    if not text:
        raise InputError(f"${name}_FILE names {file}, which is empty")
    return text


def _resolve_dataset(spec: str, base: Path) -> str:
    """A dataset spec with its file part(s) made relative to ``base`` (``sklearn:...`` specs are left alone)."""
    if spec.startswith("sklearn:"):
        return spec
    return ",".join(p if Path(p).is_absolute() else str(base / p) for p in spec.split(","))


def _resolve(data: object, base: Path) -> object:
    """Make relative ``*_file``, ``path`` and ``calibration_data`` files relative to the config file's folder."""
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for k, v in data.items():
            if isinstance(v, str) and k in ("calibration_data", "reference_data"):
                out[k] = _resolve_dataset(v, base)
            elif isinstance(v, str) and (k == "path" or k.endswith("_file")) and not Path(v).is_absolute():
                out[k] = str(base / v)
            else:
                out[k] = _resolve(v, base)
        return out
    return data


def parse_config(data: dict[str, object], *, base: Path | None = None, source: str = "config") -> ServeConfig:
    """A checked ``ServeConfig`` from a parsed TOML table; relative paths resolve against ``base``."""
    resolved = data if base is None else _resolve(data, base)
    try:
        return ServeConfig.model_validate(resolved)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        msg = first["msg"].removeprefix("Value error, ")
        raise InputError(f"{source}: {where}: {msg}", hint=f"{len(exc.errors())} problem(s) in all") from None


def load_config(path: str | os.PathLike[str]) -> ServeConfig:
    """Read and check a serve TOML file; one clear ``InputError`` when anything is wrong."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"config file {file} does not exist", hint="e.g. modelshield serve --config serve.toml")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: not valid TOML ({exc})") from None
    return parse_config(data, base=file.resolve().parent, source=str(file))

"""Authorisation with pycasbin: RBAC roles with inheritance plus ABAC conditions, deny by default.

The model (``policies/model.conf``) matches a rule when the caller holds its role (directly or by
inheritance), the model and action match its patterns, and its condition — an expression over the
caller (``r.sub``), the resource (``r.obj``), the action (``r.act``) and the context (``r.env``) —
holds. Any matching ``deny`` rule overrides every ``allow``; with no matching allow the answer is no.

Conditions are casbin expressions (``&&``, ``||``, ``!``, comparisons) calling the functions below
(``clearanceAtLeast``, ``sameTenant``, ``scopeAllows``, ``withinHours``, ``purposeIn``, ``hasRole``).
Casbin's own ``eval()`` re-parses a rule's condition for every rule on every request; here each
condition is parsed once per policy version and called through the ``cond`` matcher function, which
keeps a decision well inside the gateway's latency budget. Decisions are deterministic in their
inputs, so the last ``cache_size`` of them are memoised per policy version (a reload empties the cache).

The two files are re-read when either changes (checked at most every ``check_interval`` seconds);
the new policy is built and smoke-tested off to the side and swapped in whole, and a broken file
keeps the last good policy and logs an error. Every ``Decision`` names the rule that decided it and
the policy version (a hash of both files), so the audit log can say exactly why.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import casbin
from casbin.core_enforcer import CoreEnforcer
from casbin.persist.adapter import load_policy_line
from casbin.util import key_match

from modelshield.core.conditions import compile_conditions
from modelshield.core.errors import InputError
from modelshield.serve.identity import Identity

log = logging.getLogger(__name__)

POLICY_DIR = Path(__file__).parent / "policies"
DEFAULT_MODEL_CONF = POLICY_DIR / "model.conf"
DEFAULT_POLICY = POLICY_DIR / "policy.csv"
SENSITIVITY_LEVELS = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}
DEFAULT_SENSITIVITY = "internal"
DEFAULT_CLEARANCE = "public"
DEFAULT_PURPOSE = "inference"


@dataclass(frozen=True)
class Decision:
    """An authorisation answer with the reason and policy version to audit it by."""

    allowed: bool
    reason: str
    policy_version: str
    rule: tuple[str, ...] = ()

    def audit_fields(self) -> dict[str, Any]:
        """The decision as audit-event fields."""
        return {
            "decision": "allow" if self.allowed else "deny",
            "reason": self.reason,
            "policy_version": self.policy_version,
            "rule": ", ".join(self.rule) or None,
        }


# -- functions available to the matcher and to conditions -----------------------------------------------


def clearance_at_least(clearance: str, sensitivity: str) -> bool:
    """The caller's clearance level is at least the model's sensitivity (unknown values fail closed)."""
    have = SENSITIVITY_LEVELS.get(clearance, -1)
    need = SENSITIVITY_LEVELS.get(sensitivity, len(SENSITIVITY_LEVELS))
    return have >= need


def same_tenant(subject_tenant: str, resource_tenant: str) -> bool:
    """A model without a tenant is shared; one with a tenant belongs to that tenant only."""
    return not resource_tenant or subject_tenant == resource_tenant


def scope_allows(scopes: tuple[str, ...], action: str, model: str) -> bool:
    """No scopes means the roles decide; otherwise some scope must match ``action`` or ``action:model`` (globs)."""
    if not scopes:
        return True
    target = f"{action}:{model}"
    return any(fnmatch.fnmatchcase(action, s) or fnmatch.fnmatchcase(target, s) for s in scopes)


def within_hours(hour: int, start: int, end: int) -> bool:
    """``start <= hour < end`` on a 24-hour clock; a window like 22..6 wraps past midnight."""
    return start <= hour < end if start <= end else hour >= start or hour < end


def purpose_in(purpose: str, allowed: str) -> bool:
    """The declared purpose is one of the space-separated allowed purposes."""
    return purpose in allowed.split()


class _Enforcer(casbin.Enforcer):
    """A casbin Enforcer that parses its matcher once instead of on every ``enforce`` call.

    Only used under ``PolicyEngine``'s lock: a parsed expression keeps per-call state.
    """

    def _get_expression(self, expr: str, functions: Any = None) -> Any:
        cache = self.__dict__.setdefault("_parsed", {})
        if expr not in cache:
            cache[expr] = CoreEnforcer._get_expression(expr, functions)
        return cache[expr]


@dataclass(frozen=True)
class _Loaded:
    enforcer: _Enforcer
    version: str
    stamp: tuple[tuple[int, int, int], ...]


def _file_stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def _build(model_conf: Path, policy: Path) -> _Loaded:
    """Parse, compile and smoke-test a policy; raises InputError naming the file and the problem."""
    stamp = _file_stamp((model_conf, policy))
    conf_bytes, policy_bytes = model_conf.read_bytes(), policy.read_bytes()
    version = hashlib.sha256(conf_bytes + b"\0" + policy_bytes).hexdigest()[:16]
    try:
        model = casbin.Enforcer.new_model(text=conf_bytes.decode("utf-8"))
    except Exception as exc:  # casbin raises bare exceptions for syntax errors
        raise InputError(f"{model_conf}: not a valid casbin model ({exc})") from None
    for number, raw in enumerate(policy_bytes.decode("utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            load_policy_line(line, model)
        except Exception as exc:
            raise InputError(f"{policy}:{number}: cannot parse the rule ({exc})") from None
    enforcer = _Enforcer(model)
    enforcer.build_role_links()
    roles = enforcer.get_role_manager()

    def has_role(sub: Any, role: str) -> bool:
        return role == "*" or any(roles.has_link(r, role) for r in sub.roles)

    functions: dict[str, Callable[..., Any]] = {
        "hasRole": has_role,
        "clearanceAtLeast": clearance_at_least,
        "sameTenant": same_tenant,
        "scopeAllows": scope_allows,
        "withinHours": within_hours,
        "purposeIn": purpose_in,
        "keyMatch": key_match,
    }

    for rule in model["p"]["p"].policy:
        if len(rule) != 5 or rule[4] not in ("allow", "deny"):
            raise InputError(f"{policy}: rule {', '.join(rule)!r} needs 5 fields ending in allow or deny")
    texts = list(dict.fromkeys(rule[3] for rule in model["p"]["p"].policy))
    try:
        cond = compile_conditions(texts, functions)
    except InputError as exc:
        raise InputError(f"{policy}: {exc}") from None
    for name, fn in {**functions, "cond": cond}.items():
        enforcer.add_function(name, fn)
    probe = _request(
        Identity("probe", "api_key", ("admin",), "t", attributes={"clearance": "restricted"}),
        "predict",
        {"model": "probe", "sensitivity": "restricted", "tenant": "t"},
        {"hour": "12"},
        0.0,
    )
    try:
        for text in texts:
            cond(text, *probe)  # unknown functions and attributes show up here, not on a live request
        enforcer.enforce_ex(*probe)
    except Exception as exc:
        raise InputError(
            f"{model_conf} / {policy}: the policy fails on a test request ({type(exc).__name__}: {exc})"
        ) from None
    return _Loaded(enforcer, version, stamp)


def _request(
    identity: Identity, action: str, resource: Mapping[str, str], context: Mapping[str, str], now: float
) -> tuple[Any, Any, str, Any]:
    """The casbin request (sub, obj, act, env) as attribute bags the expressions can read."""
    hour = context.get("hour")
    try:
        hour_value = time.gmtime(now).tm_hour if hour is None or hour == "" else int(hour)
    except (TypeError, ValueError):
        raise InputError(f"context hour must be an integer 0-23, not {hour!r}") from None
    if not 0 <= hour_value <= 23:
        raise InputError(f"context hour must be an integer 0-23, not {hour!r}")
    sub = SimpleNamespace(
        name=identity.subject,
        roles=identity.roles,
        tenant=identity.tenant or "",
        scopes=identity.scopes,
        method=identity.method,
        clearance=identity.attributes.get("clearance", DEFAULT_CLEARANCE),
    )
    obj = SimpleNamespace(
        model=resource.get("model", ""),
        version=str(resource.get("version", "")),
        sensitivity=resource.get("sensitivity") or DEFAULT_SENSITIVITY,
        tenant=resource.get("tenant") or "",
    )
    env = SimpleNamespace(
        purpose=context.get("purpose") or DEFAULT_PURPOSE,
        hour=hour_value,
        weekday=time.gmtime(now).tm_wday,
        client_ip=context.get("client_ip", ""),
    )
    return sub, obj, action, env


class PolicyEngine:
    """Decide ``identity`` × ``action`` × ``resource`` × ``context`` with a casbin policy kept in two files."""

    def __init__(
        self,
        model_conf: str | Path = DEFAULT_MODEL_CONF,
        policy: str | Path = DEFAULT_POLICY,
        *,
        check_interval: float = 1.0,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model_conf = Path(model_conf)
        self.policy = Path(policy)
        for p in (self.model_conf, self.policy):
            if not p.is_file():
                raise InputError(f"policy file {p} does not exist")
        self.check_interval = check_interval
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], Decision] = OrderedDict()
        self._cache_version = ""
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded = _build(self.model_conf, self.policy)
        self._failed_stamp: tuple[tuple[int, int, int], ...] | None = None
        self._checked = time.monotonic()

    @classmethod
    def from_files(
        cls, model_conf: str | Path = DEFAULT_MODEL_CONF, policy: str | Path = DEFAULT_POLICY, **kwargs: Any
    ) -> PolicyEngine:
        """Load a model + policy pair (default: the built-in ones) and watch them for changes."""
        return cls(model_conf, policy, **kwargs)

    @property
    def version(self) -> str:
        """Hash of the model and policy files in force."""
        return self._loaded.version

    def reload_if_changed(self) -> bool:
        """Re-read the files if they changed; True if a new policy is now in force."""
        self._checked = time.monotonic()
        try:
            stamp = _file_stamp((self.model_conf, self.policy))
        except OSError as exc:
            log.error("policy files unreadable, keeping policy %s: %s", self.version, exc)
            return False
        if stamp in (self._loaded.stamp, self._failed_stamp):
            return False
        try:
            loaded = _build(self.model_conf, self.policy)
        except (InputError, OSError, UnicodeDecodeError) as exc:
            self._failed_stamp = stamp
            log.error("policy reload failed, keeping policy %s: %s", self.version, exc)
            return False
        old = self.version
        with self._lock:
            self._loaded = loaded
        log.info("policy reloaded: %s -> %s", old, loaded.version)
        return loaded.version != old

    def decide(
        self, identity: Identity, action: str, resource: Mapping[str, str], context: Mapping[str, str] | None = None
    ) -> Decision:
        """Allow or deny, with the deciding rule; deny when nothing allows or anything denies."""
        if time.monotonic() - self._checked >= self.check_interval:
            self.reload_if_changed()
        request = _request(identity, action, resource, context or {}, self._clock())
        sub, obj, _, env = request
        key = (
            tuple(sorted(vars(sub).items())),
            tuple(sorted(vars(obj).items())),
            action,
            tuple(sorted(vars(env).items())),
        )
        with self._lock:
            loaded = self._loaded
            if self._cache_version != loaded.version:
                self._cache.clear()
                self._cache_version = loaded.version
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            allowed, rule = loaded.enforcer.enforce_ex(*request)
        decision = self._explain(bool(allowed), tuple(rule), identity, action, resource, loaded.version)
        with self._lock:
            if self._cache_version == loaded.version:
                self._cache[key] = decision
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return decision

    @staticmethod
    def _explain(
        allowed: bool, rule: tuple[str, ...], identity: Identity, action: str, resource: Mapping[str, str], version: str
    ) -> Decision:
        """The decision with the reason an auditor reads: the deciding rule, or the default deny."""
        if allowed:
            reason = f"allowed by rule [{', '.join(rule)}]"
        elif rule:
            reason = f"denied by rule [{', '.join(rule)}]"
        else:
            roles = ", ".join(identity.roles) or "none"
            reason = f"no rule allows {action} on model {resource.get('model', '')!r} for roles [{roles}]"
        return Decision(allowed, reason, version, rule)

"""The alert rules file: routes (where alerts go), escalation (severity → ordered routes with delays) and rules.

A YAML file, validated strictly (unknown keys, wrong types and dangling route names are refused) with pydantic.
Every error names the file, the line and the rule, so a typo is one line to fix::

    version: 1
    routes:
      oncall: {type: webhook, url: "https://hooks.example.org/ms", secret_env: MS_WEBHOOK_SECRET}
      secops: {type: email, host: smtp.example.org, port: 587, starttls: true, sender: ms@example.org,
               to: [secops@example.org], username: ms, password_env: MS_SMTP_PASSWORD}
      siem:   {type: syslog, host: siem.example.org, port: 514, protocol: udp}
    escalation:
      critical: [{route: siem}, {route: oncall}, {route: secops, after_s: 600}]
      medium:   [{route: siem}]
    rules:
      - {name: poisoning, kind: threshold, signal: outputs.alarm, where: {kind: poisoning}, value: 0,
         op: ">", severity: critical, group_by: [stream]}
      - {name: denials, kind: rate, signal: gateway.deny, window_s: 60, count: 20, severity: medium}
      - {name: no-traffic, kind: absence, signal: "gateway.*", for_s: 900, severity: medium}

Secrets never sit in the file: ``secret_env`` and ``password_env`` name environment variables read when an alert
is sent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelshield.core.errors import InputError, MissingFileError

Severity = Literal["info", "low", "medium", "high", "critical"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENV = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookRoute(_Strict):
    """POST the alert as JSON; signed with HMAC-SHA256 when ``secret_env`` names a variable holding the key."""

    type: Literal["webhook"]
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    secret_env: Annotated[str | None, Field(pattern=_ENV)] = None
    #: extra headers, written in the file: nothing secret (tokens belong in a collector route's token_env)
    headers: dict[str, str] = {}
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 0.5


class EmailRoute(_Strict):
    """Send the alert by SMTP (STARTTLS when asked; login when ``username`` is set)."""

    type: Literal["email"]
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    #: CA bundle that signs the server's certificate (a private relay); default: the system's trust store
    ca_file: str | None = None
    username: str | None = None
    password_env: Annotated[str | None, Field(pattern=_ENV)] = None
    sender: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    to: Annotated[list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]], Field(min_length=1)]
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0

    @model_validator(mode="after")
    def _login_pair(self) -> EmailRoute:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together (give both or neither)")
        return self


class SyslogRoute(_Strict):
    """RFC 5424 syslog to a SIEM over UDP, TCP (octet-counted framing, RFC 6587) or TLS (RFC 5425; verified
    against ``ca_file`` or the system store); each alert travels as an OCSF Detection Finding."""

    type: Literal["syslog"]
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 514
    protocol: Literal["udp", "tcp", "tls"] = "udp"
    ca_file: str | None = None
    app_name: Annotated[str, Field(pattern=r"^[!-~]{1,48}$")] = "modelshield"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0


class CollectorRoute(_Strict):
    """OCSF Detection Findings POSTed as NDJSON to an HTTP collector (Splunk HEC, Elastic, Vector, Fluent Bit)
    through an on-disk spool (``modelshield.monitor.siem``), so a collector outage delays alerts but loses none."""

    type: Literal["collector"]
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    #: the variable holding the collector's token, sent as ``Authorization: <auth_scheme> <token>``
    token_env: Annotated[str | None, Field(pattern=_ENV)] = None
    auth_scheme: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]*$")] = "Bearer"
    #: the spool file (default: alerts-<route>.spool.db in $MODELSHIELD_HOME)
    spool: str | None = None
    ca_file: str | None = None
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


Route = Annotated[WebhookRoute | EmailRoute | SyslogRoute | CollectorRoute, Field(discriminator="type")]


class Step(_Strict):
    """One step of an escalation chain: send to ``route`` once the alert has gone unacknowledged ``after_s``."""

    route: str
    after_s: Annotated[float, Field(ge=0)] = 0.0


class _Rule(_Strict):
    name: Annotated[str, Field(pattern=_NAME)]
    #: a signal name, or a shell-style pattern such as ``gateway.*``
    signal: Annotated[str, Field(min_length=1)]
    #: labels the signal must carry, with these exact values
    where: dict[str, str] = {}
    severity: Severity
    #: labels whose values split the rule into separate alerts (one per stream, per model, ...)
    group_by: list[str] = []
    #: after an alert for the same key resolves, fire no new one for this long (flapping)
    suppress_s: Annotated[float, Field(ge=0)] = 300.0
    summary: str = ""

    @field_validator("where", mode="before")
    @classmethod
    def _labels_are_strings(cls, v: Any) -> Any:
        """YAML reads ``epoch: 3`` and ``drift: true`` as numbers and booleans; labels are compared as text."""
        if isinstance(v, dict):
            return {k: str(x).lower() if isinstance(x, bool) else str(x) for k, x in v.items()}
        return v


class ThresholdRule(_Rule):
    """Fires when a matching signal's value compares true against ``value``; resolves when a matching signal
    no longer does, or none that does has come for ``resolve_after_s``."""

    kind: Literal["threshold"]
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">="
    value: float
    resolve_after_s: Annotated[float, Field(gt=0)] = 600.0


class RateRule(_Rule):
    """Fires when at least ``count`` matching signals arrive within ``window_s``; resolves when fewer do."""

    kind: Literal["rate"]
    window_s: Annotated[float, Field(gt=0)]
    count: Annotated[int, Field(ge=1)]


class AbsenceRule(_Rule):
    """Fires when no matching signal has arrived for ``for_s`` (a silent model, a dead exporter); resolves on the
    next one."""

    kind: Literal["absence"]
    for_s: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _no_groups(self) -> AbsenceRule:
        if self.group_by:
            raise ValueError("an absence rule cannot group_by: a key that never arrived has no labels")
        return self


Rule = Annotated[ThresholdRule | RateRule | AbsenceRule, Field(discriminator="kind")]


class RulesFile(_Strict):
    """A whole rules file."""

    version: Literal[1]
    routes: dict[Annotated[str, Field(pattern=_NAME)], Route]
    escalation: dict[Severity, Annotated[list[Step], Field(min_length=1)]]
    rules: list[Rule]

    @model_validator(mode="after")
    def _references(self) -> RulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule {rule.name!r} is defined twice")
            seen.add(rule.name)
            if rule.severity not in self.escalation:
                raise ValueError(f"rule {rule.name!r}: severity {rule.severity!r} has no escalation chain")
        for severity, steps in self.escalation.items():
            for step in steps:
                if step.route not in self.routes:
                    raise ValueError(
                        f"escalation {severity}: route {step.route!r} is not defined (routes: {', '.join(self.routes)})"
                    )
            if [s.after_s for s in steps] != sorted(s.after_s for s in steps):
                raise ValueError(f"escalation {severity}: steps must be in order of after_s")
        return self

    def rule(self, name: str) -> ThresholdRule | RateRule | AbsenceRule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise InputError(f"no rule named {name!r}")


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest YAML node on ``loc`` (pydantic's error path)."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    nxt = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        node = nxt
    return node.start_mark.line + 1 if node is not None else line


def _line_of_name(node: yaml.Node | None, message: str) -> int | None:
    """For an error about the whole file ("route 'x' is not defined"): the line of the last scalar 'x'."""
    quoted = re.search(r"'([^']+)'", message)
    if node is None or quoted is None:
        return None
    line = None
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.ScalarNode) and n.value == quoted.group(1):
            line = max(line or 0, n.start_mark.line + 1)
        elif isinstance(n, yaml.MappingNode):
            stack.extend(v for pair in n.value for v in pair)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return line


def _where(data: Any, loc: tuple[int | str, ...]) -> str:
    """'rule NAME: ' when the error is inside a rule (or route) that has a name, else ''."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(data, dict):
        rules = data.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            return f"rule {rules[loc[1]].get('name', f'#{loc[1] + 1}')!r}: "
        return f"rule #{loc[1] + 1}: "
    if len(loc) >= 2 and loc[0] == "routes":
        return f"route {loc[1]!r}: "
    return ""


def parse_rules(text: str, source: str = "<rules>") -> RulesFile:
    """Validate a rules file's text; the error names ``source``, the line and the rule."""
    try:
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"{source}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise InputError(f"{source}: a rules file is a mapping with version, routes, escalation and rules")
    try:
        return RulesFile.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = _without_tag(tuple(first["loc"]))
        message = re.sub(r"^Value error, ", "", first["msg"])
        line = _line_of(tree, loc) if loc else _line_of_name(tree, message)
        inner = loc[2:] if len(loc) >= 2 and loc[0] in ("rules", "routes") else loc
        field = ".".join(str(p) for p in inner)
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        at = f"{source}:{line}" if line else source
        raise InputError(f"{at}: {_where(data, loc)}{field + ': ' if field else ''}{message}{more}") from None


# discriminated unions put the tag into the error path (rules.0.threshold.value); the file has no such level
_TAGS = {"threshold", "rate", "absence", "webhook", "email", "syslog", "collector"}


def _without_tag(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    if len(loc) >= 3 and loc[0] in ("rules", "routes") and loc[2] in _TAGS:
        return loc[:2] + loc[3:]
    return loc


def load_rules(path: Path) -> RulesFile:
    """Read and validate a rules file."""
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    return parse_rules(path.read_text(encoding="utf-8"), str(path))


__all__ = [
    "AbsenceRule",
    "CollectorRoute",
    "EmailRoute",
    "RateRule",
    "Route",
    "Rule",
    "RulesFile",
    "Severity",
    "Step",
    "SyslogRoute",
    "ThresholdRule",
    "WebhookRoute",
    "load_rules",
    "parse_rules",
]

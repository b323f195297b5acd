"""The status file: what the system's owner decided about each finding, kept in version control beside the system.

Format (YAML)::

    findings:
      TM-1a2b3c4d5e6f:
        status: accepted          # open, accepted, mitigated or false-positive
        note: partner traffic is behind the API gateway's mTLS
        rule: STRIDE-FLOW-SPOOF   # written by `threat status` so a person can read the file; not used to match
        element: score_request

People edit it by hand or with ``modelshield threat status``; both keep every other entry as it was.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from modelshield.core.errors import InputError, validation_line
from modelshield.core.files import atomic_output, load_yaml
from modelshield.threat.findings import Decision, Status, ThreatFinding

HEADER = "# modelshield threat status: set each finding's status to open, accepted, mitigated or false-positive\n"


def load_decisions(path: Path) -> dict[str, Decision]:
    """The decisions in a status file; an absent file means none yet."""
    if not path.exists():
        return {}
    data = load_yaml(path) or {}
    entries = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise InputError(f"{path}: a status file is a mapping with a 'findings' table")
    decisions: dict[str, Decision] = {}
    for fid, entry in entries.items():
        try:
            decisions[str(fid)] = Decision.model_validate(entry)
        except ValidationError as exc:
            allowed = ", ".join(s.value for s in Status)
            hint = f" (one of: {allowed})" if "status" in exc.errors()[0]["loc"] else ""
            raise InputError(f"{path}: {fid}.{validation_line(exc)}{hint}") from None
    return decisions


def save_decisions(path: Path, decisions: dict[str, Decision]) -> None:
    """Write the status file whole (atomically), sorted by id so diffs stay small."""
    body = {"findings": {fid: decisions[fid].model_dump(mode="json") for fid in sorted(decisions)}}
    text = HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
    with atomic_output(path, mode=0o644) as f:
        f.write(text.encode("utf-8"))


def record(path: Path, finding: ThreatFinding, status: Status, note: str = "") -> Decision:
    """Set one finding's status in the file, keeping every other entry."""
    decisions = load_decisions(path)
    decision = Decision(status=status, note=note, rule=finding.rule, element=finding.element)
    decisions[finding.id] = decision
    save_decisions(path, decisions)
    return decision


__all__ = ["load_decisions", "record", "save_decisions"]

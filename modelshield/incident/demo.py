"""A small, realistic audit log to try ``modelshield incident bundle --demo`` on: gateway traffic, an extraction
alert, an integrity alert, signed checkpoints, and an unmasked application log of the kind that leaks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from modelshield.audit import AuditLog, generate_keypair, load_private_key

DEMO_RECORDS = 400


@dataclass(frozen=True)
class DemoEvidence:
    url: str
    key: Path
    public_key: Path
    gateway_log: Path


def _event(i: int, start: datetime) -> dict[str, object]:
    subject = ("alice", "bob", "scraper-7")[i % 3]
    event: dict[str, object] = {
        "time": (start + timedelta(seconds=i)).isoformat(),
        "action": "predict",
        "actor": {"subject": subject, "method": "api_key", "tenant": "acme"},
        "model": "digits",
        "model_version": 1,
        "decision": "allow",
        "status_code": 200,
        "input_digest": f"sha256:{i:064x}",
    }
    if i == 250:
        event.update(action="security.extraction", decision="flag", reason="queries look like model extraction")
    if i == 320:
        event.update(action="security.model_integrity", decision="deny", status_code=503, reason="digest changed")
    return event


def make_demo_evidence(folder: Path) -> DemoEvidence:
    """Write ``audit.db`` (signed every 100 records), ``audit.key``/``audit.pub`` and ``gateway.log`` to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    key, pub = folder / "audit.key", folder / "audit.pub"
    if not key.exists():
        generate_keypair(key, pub)
    db = folder / "audit.db"
    url = f"sqlite:///{db}"
    start = datetime.now(UTC) - timedelta(seconds=DEMO_RECORDS)
    if not db.exists():  # an existing demo log is reused as it is
        with AuditLog.open(url, signing_key=load_private_key(key), checkpoint_every=100, durability="process") as log:
            for i in range(1, DEMO_RECORDS + 1):
                log.append(_event(i, start))
            log.checkpoint()
    stamp = start.isoformat(timespec="milliseconds")  # as the gateway's JSON log formatter writes it
    lines = [
        {"time": stamp, "level": "INFO", "logger": "gateway", "message": "started on :8443"},
        {"time": stamp, "level": "INFO", "message": "login alice@example.com", "api_key": "msk_demo_1234"},
        {"time": stamp, "level": "WARNING", "message": "extraction signal for scraper-7 on digits"},
    ]
    log_path = folder / "gateway.log"
    log_path.write_text(
        "".join(json.dumps(x) + "\n" for x in lines) + "retry with Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln\n"
    )
    return DemoEvidence(url, key, pub, log_path)

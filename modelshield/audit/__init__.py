"""Tamper-evident, append-only audit log: a SHA-256 hash chain with signed RFC 6962 Merkle checkpoints.

from modelshield.audit import AuditLog, generate_keypair, load_public_key
with AuditLog.open("sqlite:///audit.db", signing_key=private_key, witness="audit.witness") as log:
    seq = log.append({"action": "predict", "decision": "allow", "input_digest": "..."})
report = AuditLog.open("sqlite:///audit.db").verify(load_public_key("audit.pub"), witness="audit.witness")
"""

from modelshield.audit.canonical import canonical_event, canonical_json
from modelshield.audit.checkpoint import Checkpoint
from modelshield.audit.keys import generate_keypair, key_id, load_private_key, load_public_key
from modelshield.audit.log import AuditLog, AuditWriteError
from modelshield.audit.verify import VerifyReport, verify_log

__all__ = [
    "AuditLog",
    "AuditWriteError",
    "Checkpoint",
    "VerifyReport",
    "canonical_event",
    "canonical_json",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "verify_log",
]

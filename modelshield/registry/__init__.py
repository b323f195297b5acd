"""Model inventory: registered versions with digest, owner, datasets, signature and lifecycle status.

from modelshield.registry import Registry
with Registry.open() as reg:
    mv = reg.register("digits", "models/digits", owner="ml-team", datasets=["sklearn:digits"])
    reg.promote("digits", mv.version, "staged"); reg.promote("digits", mv.version, "production")
    reg.verify(reg.get("digits"))      # IntegrityError (and quarantine) if the files changed
"""

from modelshield.registry.store import NAME, STATUSES, ModelVersion, Registry, check_name

__all__ = ["NAME", "STATUSES", "ModelVersion", "Registry", "check_name"]

"""The installed Python distributions, as the SBOM, the licence check and the audit all read them."""

from __future__ import annotations

from importlib import metadata

from packaging.utils import canonicalize_name


def metadata_field(dist: metadata.Distribution, key: str) -> str:
    """One core-metadata field, ``""`` when absent."""
    values = dist.metadata.get_all(key) or [""]
    return str(values[0]).strip()


def installed_distributions() -> dict[str, metadata.Distribution]:
    """Installed distributions by PEP 503 name; the first on ``sys.path`` wins, as it does for imports."""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        if (name := metadata_field(dist, "Name")) and dist.version:
            found.setdefault(canonicalize_name(name), dist)
    return found

"""Refresh the vendored OCSF schema: ``python -m modelshield.monitor.siem.vendor OCSF_SCHEMA_CHECKOUT``.

Copies only the source files that compiling modelshield's classes (API Activity, Detection Finding) with every
profile needs, with descriptions and references removed (the validator never reads them; the copy shrinks from
~0.7 MB to a fraction of it), plus the schema's LICENSE and NOTICE and a SOURCE line saying what was changed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from modelshield.monitor.siem.schema import DEFAULT_ROOT, OcsfSchema, closure

CLASSES = ("api_activity", "detection_finding")


def _strip(node: Any) -> Any:
    """Drop prose (a string ``description``, a list of ``references``); an attribute *named* description stays."""
    if isinstance(node, dict):
        return {
            k: _strip(v)
            for k, v in node.items()
            if not (k == "description" and isinstance(v, str)) and not (k == "references" and isinstance(v, list))
        }
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def vendor(source: Path, dest: Path = DEFAULT_ROOT) -> int:
    """Write the needed files of the schema checkout ``source`` under ``dest``; returns how many."""
    schema = OcsfSchema(source)
    files = closure(schema, CLASSES) | {source / "version.json"}
    if dest.exists():
        shutil.rmtree(dest)
    for path in sorted(files):
        out = dest / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = _strip(json.loads(path.read_text(encoding="utf-8")))
        out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    for name in ("LICENSE", "NOTICE"):
        shutil.copyfile(source / name, dest / name)
    origin = (
        (source / "SOURCE").read_text(encoding="utf-8").split(", version")[0].strip()
        if (source / "SOURCE").exists()
        else str(source)
    )
    (dest / "SOURCE").write_text(
        f"{origin}, schema version {schema.version}; Apache-2.0 (LICENSE, NOTICE).\n"
        f"Modified by modelshield: only the {len(files)} files needed to compile {', '.join(CLASSES)} with every\n"
        "profile are kept, and their 'description' and 'references' fields are removed.\n"
        "Regenerate with: python -m modelshield.monitor.siem.vendor PATH_TO_OCSF_SCHEMA\n",
        encoding="utf-8",
    )
    return len(files)


if __name__ == "__main__":
    print(vendor(Path(sys.argv[1])))  # noqa: T201 - a maintainer's script, run by hand

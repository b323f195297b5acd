"""Refresh the vendored OCSF schema: ``python -m modelshield.monitor.siem.vendor OCSF_SCHEMA_CHECKOUT``.

Copies, unchanged, only the source files that compiling modelshield's classes (API Activity, Detection Finding)
with every profile needs (~0.7 MB of the schema's 2 MB), plus its LICENSE and NOTICE and a SOURCE line. The files
keep their descriptions: OCSF's reference compiler (``ocsf-lib``), which the tests check ours against, needs them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from modelshield.monitor.siem.schema import DEFAULT_ROOT, OcsfSchema, closure

CLASSES = ("api_activity", "detection_finding")


def vendor(source: Path, dest: Path = DEFAULT_ROOT) -> int:
    """Write the needed files of the schema checkout ``source`` under ``dest``; returns how many."""
    schema = OcsfSchema(source)
    files = closure(schema, CLASSES) | {source / "version.json"}
    if dest.exists():
        shutil.rmtree(dest)
    for path in sorted(files):
        out = dest / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
    for name in ("LICENSE", "NOTICE"):
        shutil.copyfile(source / name, dest / name)
    origin = (
        (source / "SOURCE").read_text(encoding="utf-8").split(", version")[0].strip()
        if (source / "SOURCE").exists()
        else str(source)
    )
    (dest / "SOURCE").write_text(
        f"{origin}, schema version {schema.version}; Apache-2.0 (LICENSE, NOTICE).\n"
        f"Only the {len(files)} files needed to compile {', '.join(CLASSES)} with every profile, unchanged.\n"
        "Regenerate with: python -m modelshield.monitor.siem.vendor PATH_TO_OCSF_SCHEMA\n",
        encoding="utf-8",
    )
    return len(files)


if __name__ == "__main__":
    print(vendor(Path(sys.argv[1])))  # noqa: T201 - a maintainer's script, run by hand

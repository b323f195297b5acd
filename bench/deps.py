"""Dependency audit speed: this venv against a large generated OSV export, offline, and through pip-audit.

pip-audit has no offline mode (pypa/pip-audit#698), so the side-by-side serves the same advisories from a
local OSV ``/v1/query`` endpoint and lets pip-audit query it once per package, as it queries api.osv.dev.

    python bench/deps.py --records 50000
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from modelshield.supplychain.osv import load_advisories, serve_query_api
from modelshield.supplychain.vulns import Package, audit_offline, audit_online, installed_packages


def generate(n: int, packages: list[Package], seed: int = 0) -> list[dict[str, Any]]:
    """``n`` OSV records: 2% aimed at installed packages (half of those at the installed version), the rest elsewhere."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        if rng.random() < 0.02:
            pkg = rng.choice(packages)
            name, hit = pkg.name, rng.random() < 0.5
            events = [{"introduced": "0"}, {"last_affected" if hit else "fixed": pkg.version.split("+")[0]}]
        else:
            name = f"pkg-{rng.randrange(20_000)}"
            major = rng.randrange(5)
            events = [{"introduced": f"{major}.0"}, {"fixed": f"{major}.{rng.randrange(1, 9)}.{rng.randrange(9)}"}]
        records.append(
            {
                "schema_version": "1.6.0",
                "id": f"BENCH-{i}",
                "modified": "2026-01-01T00:00:00Z",
                "aliases": [f"CVE-2099-{i}"],
                "summary": "generated",
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": name},
                        "ranges": [{"type": "ECOSYSTEM", "events": events}],
                        "versions": [f"{rng.randrange(5)}.{rng.randrange(9)}" for _ in range(3)],
                    }
                ],
                "database_specific": {"severity": rng.choice(["LOW", "MODERATE", "HIGH", "CRITICAL"])},
            }
        )
    return records


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    packages = installed_packages()
    records = generate(args.records, packages)
    with tempfile.TemporaryDirectory() as tmp:
        as_list = Path(tmp, "all.json")
        as_list.write_text(json.dumps(records))
        as_zip = Path(tmp, "all.zip")
        with zipfile.ZipFile(as_zip, "w", zipfile.ZIP_DEFLATED) as archive:
            for record in records:
                archive.writestr(f"{record['id']}.json", json.dumps(record))
        t_list, db = best(lambda: load_advisories(as_list), args.repeat)
        t_zip, _ = best(lambda: load_advisories(as_zip), 1)
        # pip-audit skips versions PyPI would not know (local builds, our own checkout): both get public versions
        public = [Package(p.name, p.version.split("+")[0]) for p in packages if p.name != "modelshield"]
        t_audit, report = best(lambda: audit_offline(public, db), args.repeat)
        server = serve_query_api(db)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/query"
        t_pip, pip_report = best(lambda: audit_online(public, service="osv", osv_url=url, timeout=30), 1)
        server.shutdown()
    # pip-audit may report an alias as the id: compare the advisory's whole id set
    ours = {(v.package.lower(), frozenset({v.id, *v.aliases})) for v in report.vulnerabilities}
    theirs = {(v.package.lower(), frozenset({v.id, *v.aliases})) for v in pip_report.vulnerabilities}
    print(
        f"{args.records} OSV records, {len(public)} installed packages, {len(ours)} vulnerabilities found "
        f"(pip-audit: {len(theirs)}, same set: {ours == theirs})"
    )
    print("| step | seconds |\n|---|---:|")
    print(f"| load JSON list ({as_list.name}, {len(records)} records) | {t_list:.2f} |")
    print(f"| load zip of one file per record (osv.dev layout) | {t_zip:.2f} |")
    print(f"| match {len(public)} packages (modelshield, offline, advisories loaded) | {t_audit:.4f} |")
    print(f"| load + match (modelshield, offline, from the JSON list) | {t_list + t_audit:.2f} |")
    print(f"| pip-audit -s osv, one query per package to a local OSV API with the advisories loaded | {t_pip:.2f} |")
    print(
        f"ratio pip-audit / modelshield, advisories loaded on both sides: {t_pip / t_audit:.0f}x; "
        f"pip-audit / modelshield load + match: {t_pip / (t_list + t_audit):.1f}x"
    )


if __name__ == "__main__":
    main()

"""Threat modeling: modelshield's rules on the demo, on pytm's own sample model (translated) and on a large
generated system; pytm on its sample, side by side, when a Python with pytm installed is given.

pytm is not a modelshield dependency: install it in a throwaway venv and point ``--pytm-python`` at it::

    python3 -m venv /tmp/pytm && /tmp/pytm/bin/pip install pytm
    python bench/threat.py --pytm-python /tmp/pytm/bin/python --markdown

"Named technology absent" counts pytm findings whose threat is specific to a technology the sample model does
not contain (PHP, SOAP, LDAP, XML/DTD, server-side includes, the Windows registry): a lower bound on the
findings that do not apply, decided by the threat's name alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelshield.threat import analyse, builtin_rules, demo_system, load_system, parse_system
from modelshield.threat.atlas import load_atlas

SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "threat" / "data" / "pytm_sample.yaml"
ABSENT_TECHNOLOGY = {"INP16": "PHP", "INP34": "SOAP", "INP09": "LDAP", "INP19": "XML", "INP21": "DTD", "INP22": "XML",
                     "INP03": "SSI", "AC08": "Windows registry"}  # fmt: skip

# pytm's sample model (OWASP/pytm tm.py) without its hand-written Finding objects, which are not rule output.
PYTM_SAMPLE = """
import json, time
t_import = time.perf_counter()
from pytm import TM, Actor, Boundary, Classification as C, Data, Dataflow, Datastore, Lambda, Server
t0 = time.perf_counter()
tm = TM("my test tm"); tm.isOrdered = True; tm.mergeResponses = True
internet, server_db, vpc = Boundary("Internet"), Boundary("Server/DB"), Boundary("AWS VPC")
user = Actor("User"); user.inBoundary = internet
web = Server("Web Server"); web.OS = "Ubuntu"; web.isHardened = True; web.sanitizesInput = False
web.encodesOutput = True; web.authorizesSource = False
db = Datastore("SQL Database"); db.OS = "CentOS"; db.isHardened = False; db.inBoundary = server_db
db.isSQL = True; db.inScope = True; db.maxClassification = C.RESTRICTED
sdb = Datastore("Real Identity Database"); sdb.OS = "CentOS"; sdb.isHardened = True; sdb.inBoundary = server_db
sdb.isSQL = True; sdb.inScope = True; sdb.storesPII = True; sdb.maxClassification = C.TOP_SECRET
lam = Lambda("AWS Lambda"); lam.hasAccessControl = True; lam.inBoundary = vpc
def flow(a, b, name, proto, port, data, cls):
    f = Dataflow(a, b, name); f.protocol = proto; f.data = Data(data, classification=cls)
    if port: f.dstPort = port
    return f
f1 = flow(db, sdb, "Database verify real user identity", "RDA-TCP", 40234, "Token", C.SECRET)
f1.maxClassification = C.SECRET
f2 = flow(user, web, "User enters comments (*)", "HTTP", 80, "Comments", C.PUBLIC)
f3 = flow(web, db, "Insert query with comments", "MySQL", 3306, "Insert query", C.PUBLIC)
f4 = flow(db, web, "Retrieve comments", "MySQL", 80, "Comments from DB", C.PUBLIC); f4.responseTo = f3
f5 = flow(web, user, "Show comments (*)", "HTTP", None, "Comments shown", C.PUBLIC); f5.responseTo = f2
f6 = flow(lam, db, "Serverless function periodically cleans DB", "MySQL", 3306, "Clear op", C.PUBLIC)
tm.resolve()
print(json.dumps({"seconds": time.perf_counter() - t0, "import_s": t0 - t_import, "threats": [f.threat_id for f in tm.findings],
                  "library": len(tm._threats)}))
"""


def _median_time(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def generated_system(n_pipelines: int) -> dict[str, Any]:
    """``n_pipelines`` copies of an ML pipeline (vendor → ingest → store → train → registry → API ← client)."""
    elements: list[dict[str, Any]] = []
    flows: list[dict[str, Any]] = []
    boundaries: dict[str, list[str]] = {"vendor": [], "corp": [], "cloud": [], "internet": []}
    for i in range(n_pipelines):
        ids = {k: f"{k}{i}" for k in ("vendor", "ingest", "store", "train", "reg", "api", "client", "admin")}
        elements += [
            {"id": ids["vendor"], "kind": "labelling_vendor"},
            {"id": ids["ingest"], "kind": "process", "validates_input": i % 2 == 0},
            {"id": ids["store"], "kind": "feature_store", "classification": "confidential"},
            {"id": ids["train"], "kind": "training_job"},
            {"id": ids["reg"], "kind": "model_registry", "signed_models": i % 3 == 0},
            {"id": ids["api"], "kind": "inference_endpoint", "returns": "labels" if i % 2 else "scores"},
            {"id": ids["client"], "kind": "actor"},
            {"id": ids["admin"], "kind": "actor", "privileged": True},
        ]
        for src, dst in (("vendor", "ingest"), ("ingest", "store"), ("store", "train"), ("train", "reg"),
                         ("reg", "api"), ("client", "api"), ("api", "client"), ("admin", "reg")):  # fmt: skip
            flows.append({"id": f"{src}-{dst}{i}", "source": ids[src], "destination": ids[dst],
                          "encrypted": i % 2 == 0, "authenticated": i % 4 == 0})  # fmt: skip
        boundaries["vendor"].append(ids["vendor"])
        boundaries["corp"].append(ids["ingest"])
        boundaries["cloud"] += [ids[k] for k in ("store", "train", "reg", "api", "admin")]
        boundaries["internet"].append(ids["client"])
    return {"name": f"{n_pipelines} pipelines", "elements": elements, "flows": flows,
            "boundaries": [{"id": b, "elements": e} for b, e in boundaries.items()]}  # fmt: skip


def run(pytm_python: str | None, repeats: int, pipelines: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    load_atlas()
    rules = builtin_rules()
    load_s = time.perf_counter() - t0
    demo, sample = demo_system(), load_system(SAMPLE)
    big = parse_system(generated_system(pipelines))
    out: dict[str, Any] = {
        "rules": len(rules.rules),
        "load_atlas_and_rules_s": load_s,
        "demo": {
            "findings": len(analyse(demo, [rules]).findings),
            "seconds": _median_time(lambda: analyse(demo, [rules]), repeats),
        },  # fmt: skip
        "pytm_sample": {
            "findings": len(analyse(sample, [rules]).findings),
            "seconds": _median_time(lambda: analyse(sample, [rules]), repeats),
        },  # fmt: skip
        "generated": {
            "elements": len(big.elements),
            "flows": len(big.flows),
            "findings": len(analyse(big, [rules]).findings),
            "seconds": _median_time(lambda: analyse(big, [rules]), 3),
        },  # fmt: skip
    }
    if pytm_python:
        runs = []
        for _ in range(repeats):
            done = subprocess.run([pytm_python, "-c", PYTM_SAMPLE], capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        threats = runs[0]["threats"]
        out["pytm"] = {
            "library": runs[0]["library"],
            "findings": len(threats),
            "distinct": len(set(threats)),
            "absent_technology": sum(t in ABSENT_TECHNOLOGY for t in threats),
            "seconds": statistics.median(r["seconds"] for r in runs),
            "import_s": statistics.median(r["import_s"] for r in runs),
        }
    return out


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "| system | tool | rules | findings | time (median) |",
        "|---|---|---|---|---|",
        f"| demo credit-risk ML system | modelshield | {r['rules']} | {r['demo']['findings']} "
        f"| {r['demo']['seconds'] * 1e3:.1f} ms |",
        f"| pytm sample (web comments) | modelshield | {r['rules']} | {r['pytm_sample']['findings']} "
        f"| {r['pytm_sample']['seconds'] * 1e3:.1f} ms |",
    ]
    if "pytm" in r:
        p = r["pytm"]
        lines.append(
            f"| pytm sample (web comments) | pytm | {p['library']} | {p['findings']} ({p['distinct']} distinct; "
            f"{p['absent_technology']} name a technology absent from the model) | {p['seconds'] * 1e3:.0f} ms "
            f"(+ {p['import_s']:.2f} s import) |"
        )
    g = r["generated"]
    lines.append(
        f"| generated: {g['elements']} elements, {g['flows']} flows | modelshield | {r['rules']} | {g['findings']} "
        f"| {g['seconds']:.2f} s |"
    )
    lines.append(
        f"\nmodelshield loads the ATLAS release and the rules once per process: {r['load_atlas_and_rules_s']:.2f} s."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pytm-python", help="a Python interpreter with pytm installed")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pipelines", type=int, default=100, help="pipelines in the generated system")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    result = run(args.pytm_python, args.repeats, args.pipelines)
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""DPAs mapped through lineage to the model versions made from the vendor's data, on a real pipeline run served
by the gateway: a purpose outside the DPA and a use after it expired are flagged."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from modelshield.govern.dpa import DpaStore, dpa_models
from modelshield.govern.lineage import LineageStore

if TYPE_CHECKING:
    from conftest import PipelineRun, RunMain


def test_dpa_check_maps_vendor_data_to_models_and_flags_what_breaks_it(
    pipeline_run: PipelineRun, run_main: RunMain
) -> None:
    db = pipeline_run.db
    code, _, err = run_main("govern", "load", str(pipeline_run.run), "--audit-db", pipeline_run.gateway_db, "--db", db)
    assert code == 0, err
    code, out, err = run_main(
        "govern", "dpa", "add", "acme-labels", "-d", "*/data/incoming.csv", "-p", "training", "-p", "inference",
        "--terms", "MSA-2026-17 schedule 3", "--signed", "2026-01-01", "--expires", "2030-01-01", "--db", db,
    )  # fmt: skip
    assert code == 0 and "recorded #1  acme-labels" in out, err
    code, out, err = run_main("govern", "dpa", "check", "--db", db)
    assert code == 0 and "digits:1  ok  uses: inference, training" in out, out + err

    # the same data under a DPA for evaluation only, and one that ended before the model was trained
    code, _, err = run_main("govern", "dpa", "add", "acme-eval", "-d", "*/data/incoming.csv", "-p", "evaluation", "--terms", "eval only", "--signed", "2026-01-01", "--db", db)  # fmt: skip
    assert code == 0, err
    code, _, err = run_main("govern", "dpa", "add", "old-vendor", "-d", "*/data/reference.csv", "-p", "training", "-p", "inference", "--terms", "t", "--signed", "2025-01-01", "--expires", "2026-01-01", "--db", db)  # fmt: skip
    assert code == 0, err
    code, out, _ = run_main("govern", "dpa", "check", "--db", db, "--json")
    assert code == 1
    report = {d["vendor"]: d["models"] for d in json.loads(out)}
    assert [m["flags"] for m in report["acme-labels"]] == [[]]
    (model,) = report["acme-eval"]
    assert (model["model"], model["version"]) == ("digits", 1)
    assert {u["purpose"] for u in model["uses"]} >= {"training", "inference"}
    assert any("training is not a purpose the DPA permits (evaluation)" in f for f in model["flags"])
    (old,) = report["old-vendor"]
    assert old["flags"] and all("after the DPA expired (2026-01-01T00:00:00+00:00)" in f for f in old["flags"])

    with DpaStore.open(db) as store, LineageStore.open(db) as lineage:  # the typed read API the DPIA uses
        (acme,) = store.dpas(vendor="acme-labels")
        assert [m.ref for m in dpa_models(acme, lineage)] == ["digits:1"]
    code, _, err = run_main("govern", "dpa", "check", "7", "--db", db)
    assert code == 2 and "no DPA 7" in err

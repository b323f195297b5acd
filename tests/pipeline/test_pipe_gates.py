"""Each planted artefact is caught by the right gate, and the run stops there with a reason naming it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelshield.demo import train_digits_cnn
from modelshield.pipeline import load_pipeline, run_pipeline
from modelshield.pipeline.demo import plant_pickle, plant_poison, write_demo

if TYPE_CHECKING:
    from conftest import RunMain


def _statuses(outcome_stages: list[dict[str, object]]) -> dict[str, object]:
    return {str(s["name"]): s["status"] for s in outcome_stages}


def test_planted_pickle_exits_non_zero_at_the_scan_stage_and_names_it(demo: Path, run_main: RunMain) -> None:
    planted = plant_pickle(demo / "base-model")
    code, out, err = run_main("pipeline", "run", str(demo / "pipeline.yaml"), "--out", str(demo.parent / "run"))
    assert code == 1, err
    assert "stopped at stage scan:" in err and str(planted) in err and "posix.system" in err
    assert "FAIL scan" in out and "ok   ingest" in out and " train " not in out  # nothing loaded the pickle
    assert (demo.parent / "run" / "record.sig.json").exists()  # a stopped run is signed evidence too


def test_poisoned_batch_stops_at_ingest_with_the_quarantine(demo: Path) -> None:
    flipped = plant_poison(demo / "data/incoming.csv")
    config, base = load_pipeline(demo / "pipeline.yaml")
    outcome = run_pipeline(config, base, run_dir=demo.parent / "run")
    assert (outcome.status, outcome.stopped_at) == ("failed", "ingest")
    assert "looks poisoned" in outcome.reason and "trimmed-loss" in outcome.reason
    assert flipped == 82
    assert _statuses(outcome.stages) == {"threat": "passed", "ingest": "failed"} | {
        s.name: "not run" for s in config.stages[2:]
    }


def test_threat_model_without_a_control_stops_the_pipeline_first(demo: Path) -> None:
    system = demo / "system.yaml"
    system.write_text(system.read_text().replace("    scanned: true ", "    scanned: false "))
    config, base = load_pipeline(demo / "pipeline.yaml")
    outcome = run_pipeline(config, base, run_dir=demo.parent / "run")
    assert outcome.stopped_at == "threat" and "ML-SUPPLY-UNSCANNED on base_model (critical)" in outcome.reason


def test_release_stages_sign_audit_register_and_promote(demo: Path, tmp_path: Path) -> None:
    """The back half on a model folder: scan, SBOM + offline OSV audit, sign, register (signature checked), deploy."""
    osv = Path(__file__).parents[1] / "supplychain/data/osv-pypi.json"
    (demo / "release.yaml").write_text(
        f"""name: release
artifacts: {{model: base-model}}
key: keys/signing.pem
stages:
  - {{name: scan, kind: scan, inputs: {{model: model}}}}
  - {{name: sbom, kind: sbom, inputs: {{model: model}}, outputs: {{sbom: sbom}}, policy: {{advisories: {osv}}}}}
  - {{name: sign, kind: sign, inputs: {{model: model}}, outputs: {{signature: sig}}}}
  - name: register
    kind: register
    inputs: {{model: model, signature: sig}}
    policy: {{model_name: digits, owner: ml-team, db: "sqlite:///{tmp_path}/registry.db"}}
  - {{name: deploy, kind: deploy}}
"""
    )
    config, base = load_pipeline(demo / "release.yaml")
    outcome = run_pipeline(config, base, run_dir=tmp_path / "run")
    assert outcome.status == "passed", outcome.reason
    by = {str(s["name"]): s for s in outcome.stages}
    assert by["sbom"]["details"]["packages"] > 50  # type: ignore[index]
    assert by["register"]["details"]["version"] == 1  # type: ignore[index]
    assert "promoted to production" in str(by["deploy"]["reason"])

    from modelshield.registry import Registry

    with Registry.open(f"sqlite:///{tmp_path}/registry.db") as reg:
        mv = reg.get("digits")
        assert mv.status == "production" and mv.signature_path is not None


@pytest.mark.slow
def test_clean_demo_passes_every_stage(tmp_path: Path) -> None:
    config, base = load_pipeline(write_demo(tmp_path / "system", train_digits_cnn))
    outcome = run_pipeline(config, base, run_dir=tmp_path / "run")
    assert outcome.status == "passed", outcome.reason
    assert set(_statuses(outcome.stages).values()) == {"passed"}


@pytest.mark.slow
def test_weak_model_stops_at_assess(tmp_path: Path) -> None:
    config, base = load_pipeline(write_demo(tmp_path / "system", train_digits_cnn, "weak"))
    outcome = run_pipeline(config, base, run_dir=tmp_path / "run")
    assert outcome.stopped_at == "assess" and "robust accuracy" in outcome.reason and "pgd" in outcome.reason
    assert _statuses(outcome.stages)["train"] == "passed"

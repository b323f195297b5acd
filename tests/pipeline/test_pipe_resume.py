"""A run folder a resume can trust: it continues at the first stage that did not pass, and refuses to go on
when an artefact a finished stage saw has changed since."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelshield.core.errors import IntegrityError
from modelshield.pipeline import load_pipeline, run_pipeline
from modelshield.pipeline.demo import plant_poison

if TYPE_CHECKING:
    from conftest import RunMain

# the stages up to ingest: enough to stop, fix and resume without training anything
HEAD = 2


def _head(demo: Path) -> Path:
    """The demo pipeline cut after its scan stage (threat, ingest, scan)."""
    text = (demo / "pipeline.yaml").read_text()
    (demo / "head.yaml").write_text(text.split("  - name: train\n")[0])
    return demo / "head.yaml"


def test_resume_after_a_failed_gate_continues_from_that_stage(demo: Path, run_main: RunMain) -> None:
    clean = demo / "clean.csv"
    shutil.copyfile(demo / "data/incoming.csv", clean)
    plant_poison(demo / "data/incoming.csv")
    config, base = load_pipeline(_head(demo))
    run = demo.parent / "run"
    first = run_pipeline(config, base, run_dir=run)
    assert first.stopped_at == "ingest"
    shutil.copyfile(clean, demo / "data/incoming.csv")  # the vendor re-sends a clean batch

    code, out, err = run_main("pipeline", "run", "--resume", str(run))
    assert code == 0, err
    assert "ok   threat" in out and "passed earlier, artefacts re-verified" in out
    assert "ok   ingest" in out and "ok   scan" in out
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "passed" and state["run_id"] == first.run_id
    events = [json.loads(line) for line in (run / "lineage/events.jsonl").read_text().splitlines()]
    assert [(e["job"]["name"].rsplit(".", 1)[1], e["eventType"]) for e in events] == [
        ("threat", "START"), ("threat", "COMPLETE"), ("ingest", "START"), ("ingest", "FAIL"),
        ("ingest", "START"), ("ingest", "COMPLETE"), ("scan", "START"), ("scan", "COMPLETE"),
    ]  # fmt: skip


def test_resume_refuses_when_an_artefact_of_a_passed_stage_changed(demo: Path) -> None:
    plant_poison(demo / "data/incoming.csv")
    config, base = load_pipeline(_head(demo))
    run = demo.parent / "run"
    assert run_pipeline(config, base, run_dir=run).stopped_at == "ingest"
    system = demo / "system.yaml"
    system.write_text(system.read_text() + "# edited after the threat gate passed\n")
    with pytest.raises(IntegrityError, match=r"artefact system .* changed since stage threat passed"):
        run_pipeline(run_dir=run, resume=True)


def test_a_new_run_refuses_a_used_folder_and_resume_needs_a_run_folder(demo: Path, run_main: RunMain) -> None:
    run = demo.parent / "run"
    run.mkdir()
    (run / "x").write_text("")
    code, _, err = run_main("pipeline", "run", str(_head(demo)), "--out", str(run))
    assert code == 2 and "not empty" in err and "--resume" in err
    code, _, err = run_main("pipeline", "run", "--resume", str(demo))
    assert code == 2 and "is not a pipeline run folder" in err

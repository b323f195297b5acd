"""Lineage from a real pipeline run: events validate, load once, and answer "which records trained the model
that gave this prediction" for a prediction in the gateway's audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from entrypoint import invoke_main

from modelshield.cli.audit import existing_log
from modelshield.govern.datasheet import datasheet, load_answers, markdown
from modelshield.govern.lineage import (
    LineageError,
    LineageStore,
    read_events,
    registry_events,
    served_events,
    trace_prediction,
    validate_event,
)
from modelshield.govern.schema import event_problems
from modelshield.registry import Registry

if TYPE_CHECKING:
    from conftest import PipelineRun


def _load(run: PipelineRun) -> LineageStore:
    store = LineageStore.open(run.db)
    with Registry.open(run.db) as reg:
        paths = {(mv.name, mv.version): mv.path for mv in reg.list()}
    audit, gateway = existing_log(run.db), existing_log(run.gateway_db)
    try:
        events = [*read_events(run.run), *registry_events(audit, paths), *served_events(gateway)]
    finally:
        audit.dispose()
        gateway.dispose()
    store.ingest_events(events)
    return store


def test_pipeline_events_validate_and_load_once(pipeline_run: PipelineRun) -> None:
    events = list(read_events(pipeline_run.run))
    # 4 stages x START/COMPLETE from the pipeline, plus the ingest library's own lineage.json
    assert len(events) == 9
    for event in events:
        validate_event(event)
    with LineageStore.open(pipeline_run.db) as store:
        assert store.ingest_events(events) == 9
        assert store.ingest_events(events) == 0  # the same events again: nothing new
        assert store.count() == 9


def test_a_prediction_traces_back_to_the_records_that_trained_its_model(pipeline_run: PipelineRun) -> None:
    store = _load(pipeline_run)
    audit = existing_log(pipeline_run.gateway_db)
    try:
        found = trace_prediction(store, audit, pipeline_run.request_ids[2])
    finally:
        audit.dispose()
        store.close()
    with Registry.open(pipeline_run.db) as reg:
        mv = reg.get("digits")
    assert (found.model, found.version, found.digest) == ("digits", mv.version, mv.digest)
    (train,) = found.graph.produced_by
    assert train.job == "pipeline.digits.train" and train.job_type == "TRAIN"
    (data,) = found.training_data()
    state = json.loads((pipeline_run.run / "state.json").read_text())
    assert data.digest == state["stages"]["ingest"]["outputs"]["training-data"]
    sources = {Path(d.name).name: d.digest for d in found.graph.sources()}
    assert sources == {
        "incoming.csv": state["stages"]["ingest"]["inputs"]["incoming"],
        "reference.csv": state["stages"]["ingest"]["inputs"]["reference"],
    }


def test_registration_and_serving_are_downstream_of_the_model(pipeline_run: PipelineRun) -> None:
    with _load(pipeline_run) as store, Registry.open(pipeline_run.db) as reg:
        used = store.downstream(reg.get("digits").digest)
    jobs = {r.job: r for r in used}
    assert {"registry.digits", "gateway.digits", "pipeline.digits.register"} <= set(jobs)
    (predictions,) = jobs["gateway.digits"].inputs
    assert predictions.dataset.records == len(pipeline_run.request_ids)


def test_an_invalid_event_is_refused_and_nothing_is_stored(pipeline_run: PipelineRun) -> None:
    events = list(read_events(pipeline_run.run))
    events[3] = {**events[3], "run": {"runId": "not-a-uuid"}}
    with LineageStore.open(pipeline_run.db) as store:
        with pytest.raises(LineageError, match="event 4"):
            store.ingest_events(events)
        assert store.count() == 0


def test_a_facet_is_checked_against_its_vendored_schema(pipeline_run: PipelineRun) -> None:
    event = next(e for e in read_events(pipeline_run.run) if e["outputs"])
    event["outputs"][0]["facets"]["version"].pop("datasetVersion")
    with pytest.raises(LineageError, match="datasetVersion"):
        validate_event(event)


def _main(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, out, err = invoke_main(args, monkeypatch, capsys)
    assert code == 0, err
    return code, out


def test_cli_loads_a_run_and_traces_a_prediction(
    pipeline_run: PipelineRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db, gw = ["--db", pipeline_run.db], ["--audit-db", pipeline_run.gateway_db]
    _, out = _main(["govern", "load", str(pipeline_run.run), *db, *gw], monkeypatch, capsys)
    assert "9 event(s) from files, 2 from the registry and gateway: 11 new" in out
    _, out = _main(["govern", "lineage", "digits:1", *db], monkeypatch, capsys)
    assert "produced by pipeline.digits.train (TRAIN)" in out and "incoming.csv" in out
    assert "gateway.digits (SERVE)" in out and "(5 records)" in out
    _, out = _main(["govern", "trace", pipeline_run.request_ids[0], *db, *gw, "--json"], monkeypatch, capsys)
    doc = json.loads(out)
    assert doc["model"]["name"] == "digits" and doc["prediction"]["request_id"] == pipeline_run.request_ids[0]
    assert sorted(Path(s["name"]).name for s in doc["sources"]) == ["incoming.csv", "reference.csv"]


def test_datasheet_measures_the_training_data_and_names_its_uses(pipeline_run: PipelineRun, tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("motivation: fine-tune the digit reader on the vendor's new batch\n")
    with _load(pipeline_run) as store, Registry.open(pipeline_run.db) as reg:
        mv = reg.get("digits")
        data = Path(mv.datasets[0])
        sheet = datasheet(data, store=store, models=reg.list(), answers=load_answers(answers), label="label")
    comp = sheet["sections"]["composition"]
    rows = data.read_text().count("\n") - 1
    assert comp["records"] == rows and comp["columns"] == 65 and sum(comp["label_counts"].values()) == rows
    assert [r["job"] for r in sheet["sections"]["collection"]["produced_by"]][0] == "pipeline.digits.ingest"
    assert "pipeline.digits.train" in [r["job"] for r in sheet["sections"]["uses"]["read_by"]]
    assert sheet["sections"]["uses"]["registered_models"] == ["digits:1"]
    assert "distribution" in sheet["unanswered"] and "motivation" not in sheet["unanswered"]
    assert "*Not answered.*" in markdown(sheet)


@pytest.mark.parametrize("engine", ["rs", "py"])
def test_both_validators_accept_the_run_and_name_the_same_faults(pipeline_run: PipelineRun, engine: str) -> None:
    pytest.importorskip("jsonschema_rs" if engine == "rs" else "jsonschema")
    events = list(read_events(pipeline_run.run))
    assert all(event_problems(e, engine) == [] for e in events)
    broken = json.loads(json.dumps(events[1]))
    broken["run"]["runId"] = "not-a-uuid"
    broken["eventTime"] = "yesterday"
    broken["outputs"][0]["facets"]["version"].pop("datasetVersion")
    problems = event_problems(broken, engine)
    assert any(p.startswith("run/runId:") for p in problems) and any(p.startswith("eventTime:") for p in problems)
    broken = json.loads(json.dumps(events[1]))
    broken["outputs"][0]["facets"]["version"].pop("datasetVersion")
    (problem,) = event_problems(broken, engine)
    assert problem.startswith("outputs[0].version:") and "datasetVersion" in problem

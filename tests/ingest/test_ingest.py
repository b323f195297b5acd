"""`modelshield ingest`: poison quarantined with reasons, the rest accepted, lineage valid, re-runs identical,
tampered or malformed input refused with nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ingest_data import make_table

from modelshield.ingest import IngestConfig, ingest

RunMain = Callable[..., tuple[int, str, str]]


def _quarantine(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_poison_is_quarantined_with_reasons_and_the_rest_accepted(
    tables: tuple[Path, Path, np.ndarray], tmp_path: Path, run_main: RunMain
) -> None:
    ref, new, bad = tables
    out = tmp_path / "out"
    code, stdout, stderr = run_main(
        "ingest", str(new), "--reference", str(ref), "--out", str(out), "--label", "y", "--chunk-rows", "700"
    )
    assert code == 0, stderr
    held = _quarantine(out)
    rows = {r["row"] for r in held}
    assert set(bad.tolist()) <= rows  # every planted record held back
    assert len(rows - set(bad.tolist())) < 0.05 * 3000  # and few clean ones (three detectors at 1% each)
    first = next(r for r in held if r["row"] == bad[0])
    mad = next(x for x in first["reasons"] if x["check"] == "mad")
    assert mad["score"] > mad["threshold"] > 0
    assert first["record"]["f2"] > 6  # the record itself, kept whole for review
    accepted = pd.read_csv(out / "accepted.csv")
    original = pd.read_csv(new)
    assert len(accepted) + len(held) == len(original)  # nothing dropped silently
    kept = np.setdiff1d(np.arange(len(original)), sorted(rows))
    pd.testing.assert_frame_equal(accepted, original.iloc[kept].reset_index(drop=True))
    report = json.loads((out / "report.json").read_text())
    assert report["quarantined"] == len(held) and report["accepted"] == len(accepted)
    assert report["reasons"]["detector: mad"] >= len(bad)
    assert f"{len(held)} quarantined" in stdout
    assert "Ingestion report" in (out / "report.html").read_text()


def test_schema_rules_quarantine_records_and_html_escapes_their_values(tmp_path: Path) -> None:
    frame, _ = make_table(400, seed=3)
    ref = tmp_path / "ref.csv"
    frame.to_csv(ref, index=False)
    incoming = frame.copy()
    incoming.loc[5, "f0"] = 1e6
    incoming.loc[9, "colour"] = "<script>alert(1)</script>"
    new = tmp_path / "new.csv"
    incoming.to_csv(new, index=False)
    schema = tmp_path / "schema.json"
    columns = [{"name": f, "kind": "number", "min": -50, "max": 50} for f in frame.columns[:6]]
    columns += [{"name": "colour", "kind": "category", "categories": ["blue", "green", "red"]}]
    columns += [{"name": "y", "kind": "integer", "min": 0, "max": 1}]
    schema.write_text(json.dumps({"version": 1, "columns": columns}))
    result = ingest(new, tmp_path / "out", IngestConfig(reference=ref, schema=schema, detectors=()))
    held = {r["row"]: r["reasons"] for r in _quarantine(tmp_path / "out")}
    assert set(held) == {5, 9}
    assert held[5] == [{"check": "schema", "column": "f0", "rule": "f0: above 50", "value": 1e6}]
    assert held[9][0]["column"] == "colour" and held[9][0]["rule"] == "colour: unknown category"
    assert result.accepted == 398
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html


def test_rerun_is_byte_identical_with_the_same_run_id(tables: tuple[Path, Path, np.ndarray], tmp_path: Path) -> None:
    ref, new, _ = tables
    out = tmp_path / "out"
    config = IngestConfig(reference=ref, label="y", chunk_rows=1000)
    first = ingest(new, out, config)
    before = _snapshot(out)
    again = ingest(new, out, config)
    assert again.run_id == first.run_id
    assert _snapshot(out) == before  # no duplicate quarantine rows, same event, same reports
    other = ingest(new, tmp_path / "other", IngestConfig(reference=ref, label="y", chunk_rows=1000, fpr=0.02))
    assert other.run_id != first.run_id  # settings are part of the run's identity


def test_lineage_event_validates_against_the_openlineage_schema(
    tables: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    spec = Path(__file__).parent / "openlineage"
    resources = [
        json.loads(p.read_text()) for p in [spec / "OpenLineage.json", *sorted((spec / "facets").glob("*.json"))]
    ]
    registry = Registry().with_resources((r["$id"], Resource.from_contents(r)) for r in resources)
    ref, new, _ = tables
    result = ingest(new, tmp_path / "out", IngestConfig(reference=ref, detectors=("mad",)))
    event = json.loads((tmp_path / "out" / "lineage.json").read_text())
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER

    def validate(instance: object, schema: dict) -> None:
        jsonschema.Draft202012Validator(schema, registry=registry, format_checker=checker).validate(instance)

    validate(event, resources[0])
    by_id = {r["$id"].rsplit("/", 1)[-1].removesuffix(".json"): r for r in resources[1:]}
    for dataset in event["inputs"] + event["outputs"]:
        for facets in (dataset.get("facets", {}), dataset.get("inputFacets", {}), dataset.get("outputFacets", {})):
            for key, facet in facets.items():
                name = facet["_schemaURL"].split("/")[-1].split(".json")[0]
                validate({key: facet}, by_id[name])  # each facet against its own standard schema
    validate(event["job"]["facets"], by_id["JobTypeJobFacet"])
    assert event["run"]["runId"] == result.run_id
    assert event["inputs"][0]["facets"]["version"]["datasetVersion"] == result.report["source"]["digest"]
    fields = event["inputs"][0]["facets"]["schema"]["fields"]
    assert [(f["name"], f["type"]) for f in fields][-2:] == [("colour", "category"), ("y", "integer")]
    accepted = event["outputs"][0]
    assert accepted["outputFacets"]["outputStatistics"]["rowCount"] == result.accepted
    assert accepted["name"] == str((tmp_path / "out" / "accepted.csv").absolute())
    broken = dict(event, run={"runId": "not-a-uuid"})
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, resources[0])  # the check can fail


def test_tampered_signed_input_is_refused_and_nothing_written(
    tables: tuple[Path, Path, np.ndarray], tmp_path: Path, run_main: RunMain
) -> None:
    from modelshield.integrity.signing import generate_key_pair, sign_model

    ref, new, _ = tables
    private, public = generate_key_pair("ec-p256", tmp_path / "signer.pem")
    sign_model(new, private)  # writes incoming.csv.sig beside it
    args = ["ingest", str(new), "--reference", str(ref), "--key", str(public)]
    code, _, stderr = run_main(*args, "--out", str(tmp_path / "ok"))
    assert code == 0, stderr
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert report["source"]["signature"] == str(new) + ".sig" and report["source"]["signer"].startswith("ec-p256")
    with new.open("a") as f:
        f.write("0.1,0.2,0.3,0.4,0.5,0.6,red,1\n")  # one appended record
    code, stdout, stderr = run_main(*args, "--out", str(tmp_path / "bad"))
    assert code == 1
    assert stderr.startswith("refused:") and "does not match its signature" in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not (tmp_path / "bad").exists()
    code, _, stderr = run_main("ingest", str(new), "--reference", str(ref), "--out", str(tmp_path / "nokey"))
    assert code == 2 and "no public key" in stderr  # signed, and nobody checked: refused, not skipped


def test_require_signature_refuses_unsigned_data(
    tables: tuple[Path, Path, np.ndarray], tmp_path: Path, run_main: RunMain
) -> None:
    ref, new, _ = tables
    code, _, stderr = run_main(
        "ingest", str(new), "--reference", str(ref), "--out", str(tmp_path / "o"), "--require-signature"
    )
    assert code == 1 and "has no signature" in stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f.drop(columns=["f3"]), "has no column 'f3'"),
        (lambda f: f.assign(extra=1), "columns the schema does not know: 'extra'"),
        (lambda f: f.assign(f1=f["f1"].astype(object).where(f.index != 2500, "abc")), "record 2500 holds 'abc'"),
    ],
    ids=["missing-column", "extra-column", "text-in-numeric-column-in-a-late-chunk"],
)
def test_bad_input_is_one_line_exit_2_and_leaves_earlier_outputs_untouched(
    tables: tuple[Path, Path, np.ndarray], tmp_path: Path, run_main: RunMain, damage: object, message: str
) -> None:
    ref, new, _ = tables
    out = tmp_path / "out"
    assert run_main("ingest", str(new), "--reference", str(ref), "--out", str(out))[0] == 0
    before = _snapshot(out)
    broken = tmp_path / "broken.csv"
    damage(pd.read_csv(new)).to_csv(broken, index=False)  # type: ignore[operator]
    code, _, stderr = run_main("ingest", str(broken), "--reference", str(ref), "--out", str(out), "--chunk-rows", "500")
    assert code == 2, stderr
    assert message in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert _snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]  # no temporary file left behind


@pytest.mark.parametrize(
    "content", [None, b"\x00\x01PAR1 not a table", b"a,b\n1,2,3,4\n\xff\xfe"], ids=["missing", "binary", "ragged"]
)
def test_unreadable_input_is_exit_2(
    tables: tuple[Path, Path, np.ndarray], tmp_path: Path, run_main: RunMain, content: bytes | None
) -> None:
    ref, _, _ = tables
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_bytes(content)
    code, _, stderr = run_main("ingest", str(path), "--reference", str(ref), "--out", str(tmp_path / "out"))
    assert code == 2 and stderr.startswith("error:") and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_parquet_in_parquet_out(tmp_path: Path) -> None:
    reference, _ = make_table(1500, seed=4)
    incoming, bad = make_table(2500, poison=0.02, seed=5)
    ref, new = tmp_path / "ref.parquet", tmp_path / "new.parquet"
    reference.to_parquet(ref, index=False)
    incoming.to_parquet(new, index=False, row_group_size=600)
    result = ingest(new, tmp_path / "out", IngestConfig(reference=ref, chunk_rows=400))
    accepted = pd.read_parquet(tmp_path / "out" / "accepted.parquet")
    assert len(accepted) == result.accepted == 2500 - result.quarantined
    assert accepted.dtypes.to_dict() == incoming.dtypes.to_dict()
    held = {r["row"] for r in _quarantine(tmp_path / "out")}
    assert set(bad.tolist()) <= held
    before = _snapshot(tmp_path / "out")
    ingest(new, tmp_path / "out", IngestConfig(reference=ref, chunk_rows=400))
    assert _snapshot(tmp_path / "out") == before  # Parquet output is byte-identical on a re-run too


def test_drift_from_the_reference_is_reported_and_can_gate(tmp_path: Path, run_main: RunMain) -> None:
    reference, _ = make_table(2000, seed=6)
    incoming, _ = make_table(3000, seed=7)
    incoming["f4"] += 1.0  # a shifted feature, each value unremarkable on its own
    incoming["colour"] = np.where(np.arange(3000) % 2 == 0, "blue", incoming["colour"])
    ref, new = tmp_path / "ref.csv", tmp_path / "new.csv"
    reference.to_csv(ref, index=False)
    incoming.to_csv(new, index=False)
    args = ["ingest", str(new), "--reference", str(ref), "--detectors", "none"]
    code, stdout, _ = run_main(*args, "--out", str(tmp_path / "a"))
    assert code == 0 and "drift from the reference in: f4, colour" in stdout
    drift = {d["column"]: d for d in json.loads((tmp_path / "a" / "report.json").read_text())["drift"]["features"]}
    assert drift["f4"]["drifted"] and drift["f4"]["effect"] > 0.3
    assert not any(drift[f]["drifted"] for f in ("f0", "f1", "f2", "f3", "f5", "y"))
    assert run_main(*args, "--out", str(tmp_path / "b"), "--fail-on-drift")[0] == 1


def test_memory_is_bounded_by_the_chunk_not_the_table(tmp_path: Path) -> None:
    import tracemalloc

    reference, _ = make_table(2000, seed=8)
    ref = tmp_path / "ref.csv"
    reference.to_csv(ref, index=False)
    peaks = {}
    config = IngestConfig(reference=ref, chunk_rows=400, detectors=("mad",), sample_size=400)
    ingest(ref, tmp_path / "warm", config)  # imports and caches out of the measurement
    for n in (2_000, 8_000):
        incoming, _ = make_table(n, poison=0.02, seed=9)
        path = tmp_path / f"in{n}.csv"
        incoming.to_csv(path, index=False)
        del incoming
        tracemalloc.start()
        ingest(path, tmp_path / f"out{n}", config)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[8_000] < 1.3 * peaks[2_000], peaks  # 4x the records, about the same peak


def test_provenance_lock_entry_must_match(
    tables: tuple[Path, Path, np.ndarray], tmp_path: Path, run_main: RunMain
) -> None:
    from modelshield.integrity.provenance import add_artifact

    ref, new, _ = tables
    lock = tmp_path / "modelshield.lock.json"
    add_artifact(lock, "batch-7", new, kind="dataset", source="https://example.org/batch-7.csv", licence="CC0-1.0")
    args = ["ingest", str(new), "--reference", str(ref), "--lock", str(lock), "--detectors", "none"]
    code, _, stderr = run_main(*args, "--out", str(tmp_path / "ok"))
    assert code == 0, stderr
    assert json.loads((tmp_path / "ok" / "report.json").read_text())["source"]["lock_entries"] == ["batch-7"]
    new.write_bytes(new.read_bytes().replace(b"red", b"blue", 1))  # one cell edited after pinning
    code, _, stderr = run_main(*args, "--out", str(tmp_path / "bad"))
    assert code == 1 and "does not match provenance lock entry 'batch-7'" in stderr
    assert not (tmp_path / "bad").exists()


def test_max_quarantined_gates_after_writing_the_outputs(
    tables: tuple[Path, Path, np.ndarray], tmp_path: Path, run_main: RunMain
) -> None:
    ref, new, _ = tables
    args = ["ingest", str(new), "--reference", str(ref), "--detectors", "mad", "--out", str(tmp_path / "o")]
    assert run_main(*args, "--max-quarantined", "0.01")[0] == 1  # 3 % poison is over a 1 % budget
    assert len(_quarantine(tmp_path / "o")) > 0.03 * 3000  # and the quarantine is there to review
    assert run_main(*args, "--max-quarantined", "0.1")[0] == 0

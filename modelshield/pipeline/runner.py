"""Run the stages in order, stop at the first failed gate, and keep a run folder that a resume can trust.

The run folder holds ``pipeline.json`` (the validated pipeline with absolute paths, frozen for the run),
``state.json`` (rewritten after every stage: status, reason, findings, and the digests of the artefacts it
read and wrote), ``lineage/events.jsonl`` (an OpenLineage RunEvent per stage START and COMPLETE or FAIL, each
naming the pipeline run as its parent), ``artifacts/`` (what stages wrote) and, at the end, the signed run
record (``record``). A resume re-hashes every artefact a finished stage recorded: if one changed, the resume is
refused, because the stages after it would build on something no gate has seen.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelshield.core.errors import InputError, IntegrityError, ModelShieldError
from modelshield.core.files import atomic_output
from modelshield.ingest.lineage import NAMESPACE, DatasetRef, facet, run_event
from modelshield.integrity.provenance import hash_tree
from modelshield.pipeline import stages
from modelshield.pipeline.config import PipelineConfig, Stage, parse_pipeline
from modelshield.pipeline.record import public_key_file, sign_record
from modelshield.pipeline.results import StageContext, StageResult

STATE = "state.json"
FROZEN = "pipeline.json"
EVENTS = "lineage/events.jsonl"

STAGES: dict[str, Callable[[StageContext], StageResult]] = {
    "threat": stages.threat,
    "ingest": stages.ingest,
    "scan": stages.scan,
    "train": stages.train,
    "assess": stages.assess,
    "privacy": stages.privacy,
    "sbom": stages.sbom,
    "sign": stages.sign,
    "register": stages.register,
    "deploy": stages.deploy,
}


@dataclass
class RunOutcome:
    """How a run ended: ``status`` passed or failed; a failed run names the stage and the reason."""

    run_dir: Path
    run_id: str
    status: str
    stopped_at: str | None = None
    reason: str = ""
    stages: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


Progress = Callable[[Stage, dict[str, Any]], None]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, mode=0o644) as f:
        f.write(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")


class _Run:
    """One run folder: its frozen config, its state, and where its artefacts are."""

    def __init__(self, config: PipelineConfig, base: Path, run_dir: Path, state: dict[str, Any]) -> None:
        self.config, self.base, self.dir, self.state = config, base, run_dir, state

    def path(self, name: str) -> Path:
        produced = {n for s in self.config.stages for n in s.outputs.values()}
        return self.dir / "artifacts" / name if name in produced else self.config.artifacts[name]

    def digests(self, names: list[str]) -> dict[str, str]:
        return {n: hash_tree(self.path(n)).digest for n in names}

    def save(self) -> None:
        _write_json(self.dir / STATE, self.state)

    def emit(self, event: dict[str, Any]) -> None:
        path = self.dir / EVENTS
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event, sort_keys=True, ensure_ascii=False) + "\n")

    def event(self, stage: Stage, run: str, kind: str, digests: dict[str, str], error: str | None) -> dict[str, Any]:
        """A RunEvent for one stage attempt; inputs and outputs carry their digests as dataset versions."""
        facets: dict[str, Any] = {
            "parent": facet(
                "ParentRunFacet",
                run={"runId": self.state["run_id"]},
                job={"namespace": NAMESPACE, "name": f"pipeline.{self.config.name}"},
            )
        }
        if error is not None:
            facets["errorMessage"] = facet("ErrorMessageRunFacet", message=error, programmingLanguage="PYTHON")

        inputs = [DatasetRef(self.path(n), digests[n]) for n in stage.inputs.values()]
        outputs = [
            DatasetRef(self.path(n), digests[n], size=_size(self.path(n)))
            for n in stage.outputs.values()
            if kind == "COMPLETE"
        ]
        return run_event(
            run,
            f"pipeline.{self.config.name}.{stage.name}",
            _now(),
            inputs,
            outputs,
            event_type=kind,
            job_type=stage.kind.upper(),
            run_facets=facets,
        )


def _size(path: Path) -> int:
    """Bytes written: a file's size, or the sum over a folder's files (OpenLineage ``outputStatistics.size``)."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _freeze(config: PipelineConfig, base: Path) -> dict[str, Any]:
    """The config as run: artefact, key and advisory paths made absolute, so the run folder stands alone."""
    doc = config.model_dump(mode="json", exclude_none=True)
    doc["artifacts"] = {k: str((base / v).absolute()) for k, v in config.artifacts.items()}
    if config.key is not None:
        doc["key"] = str((base / config.key).absolute())
    return doc


def _start(config: PipelineConfig, base: Path, run_dir: Path) -> _Run:
    if run_dir.exists() and any(run_dir.iterdir()):
        raise InputError(
            f"{run_dir} is not empty", hint=f"continue that run with --resume {run_dir}, or pick another --out"
        )
    missing = [f"{n} ({base / p})" for n, p in config.artifacts.items() if not (base / p).exists()]
    if missing:
        raise InputError(f"artefacts that do not exist: {', '.join(missing)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    frozen = _freeze(config, base)
    _write_json(run_dir / FROZEN, {"base": str(base), "pipeline": frozen})
    state = {"run_id": str(uuid.uuid4()), "pipeline": config.name, "started": _now(), "stages": {}}
    run = _Run(parse_pipeline(frozen, str(run_dir / FROZEN)), base, run_dir, state)
    run.save()
    return run


def _reopen(run_dir: Path) -> _Run:
    """A run folder to resume, after proving every artefact a finished stage recorded is unchanged."""
    try:
        frozen = json.loads((run_dir / FROZEN).read_text(encoding="utf-8"))
        state = json.loads((run_dir / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{run_dir} is not a pipeline run folder: {Path(str(exc.filename)).name} is missing") from None
    except ValueError as exc:
        raise InputError(f"{run_dir}: the run's files are not JSON ({exc})") from None
    run = _Run(parse_pipeline(frozen["pipeline"], str(run_dir / FROZEN)), Path(frozen["base"]), run_dir, state)
    for stage in run.config.stages:
        entry = state["stages"].get(stage.name)
        if not entry or entry["status"] != "passed":
            continue
        for name, digest in {**entry["inputs"], **entry["outputs"]}.items():
            path = run.path(name)
            now = hash_tree(path).digest if path.exists() else "missing"
            if now != digest:
                raise IntegrityError(
                    f"artefact {name} ({path}) changed since stage {stage.name} passed with it "
                    f"({digest[:19]}… → {now[:19]}…): the resume is refused",
                    hint="start a new run so every gate sees the new artefact",
                )
    return run


def run_pipeline(
    config: PipelineConfig | None = None,
    base: Path | None = None,
    *,
    run_dir: Path,
    key: Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> RunOutcome:
    """Run ``config`` (its relative paths start at ``base``) into ``run_dir``, or continue the run there.

    ``key`` (or the pipeline's ``key:``) signs the model in a sign stage and the final run record."""
    run_dir = run_dir.absolute()
    if resume:
        run = _reopen(run_dir)
    else:
        if config is None or base is None:
            raise InputError("give a pipeline and the folder its paths start from, or resume a run folder")
        run = _start(config, base, run_dir)
    key = key if key is not None else run.config.key
    if key is not None and not key.is_file():
        raise InputError(f"signing key {key} does not exist")
    if key is not None:
        public_key_file(key, run_dir)  # beside the record it verifies, and what sign and register use
    outcome = RunOutcome(run_dir, run.state["run_id"], "passed")
    for stage in run.config.stages:
        entry = run.state["stages"].get(stage.name)
        if entry and entry["status"] == "passed":
            if progress:
                progress(stage, {**entry, "resumed": True})
            continue
        entry = _run_stage(run, stage, key, outcome)
        if progress:
            progress(stage, entry)
        if entry["status"] == "failed":
            outcome.status, outcome.stopped_at, outcome.reason = "failed", stage.name, entry["reason"]
            break
    not_run = {"status": "not run"}
    outcome.stages = [
        {"name": s.name, "kind": s.kind, **run.state["stages"].get(s.name, not_run)} for s in run.config.stages
    ]
    run.state.update(status=outcome.status, stopped_at=outcome.stopped_at, ended=_now())
    run.save()
    _record(run, outcome, key)
    return outcome


def _run_stage(run: _Run, stage: Stage, key: Path | None, outcome: RunOutcome) -> dict[str, Any]:
    attempt = str(uuid.uuid4())
    started = _now()
    inputs = run.digests(list(stage.inputs.values()))
    event = run.event(stage, attempt, "START", inputs, None)
    run.emit(event)
    outcome.events.append(event)
    earlier = {
        n: {"kind": e["kind"], **e["details"]} for n, e in run.state["stages"].items() if e["status"] == "passed"
    }
    ctx = StageContext(stage, {n: run.path(n) for n in _known(run.config, stage)}, run.dir, run.base, key, earlier)
    try:
        result = STAGES[stage.kind](ctx)
    except ModelShieldError as exc:
        entry = _entry(stage, StageResult("failed", f"error: {exc.diagnostics()}"), started, inputs, {}, attempt)
        run.state["stages"][stage.name] = entry
        run.save()
        event = run.event(stage, attempt, "FAIL", inputs, entry["reason"])
        run.emit(event)
        outcome.events.append(event)
        raise
    outputs = run.digests(list(stage.outputs.values())) if result.status == "passed" else {}
    entry = _entry(stage, result, started, inputs, outputs, attempt)
    run.state["stages"][stage.name] = entry
    run.save()
    kind = "COMPLETE" if result.status == "passed" else "FAIL"
    event = run.event(stage, attempt, kind, {**inputs, **outputs}, result.reason if kind == "FAIL" else None)
    run.emit(event)
    outcome.events.append(event)
    return entry


def _known(config: PipelineConfig, upto: Stage) -> list[str]:
    names = list(config.artifacts)
    for s in config.stages:
        if s is upto:
            break
        names += list(s.outputs.values())
    return names


def _entry(
    stage: Stage, result: StageResult, started: str, inputs: dict[str, str], outputs: dict[str, str], attempt: str
) -> dict[str, Any]:
    return {
        "kind": stage.kind,
        **result.to_json(),
        "started": started,
        "ended": _now(),
        "lineage_run": attempt,
        "inputs": inputs,
        "outputs": outputs,
    }


def _record(run: _Run, outcome: RunOutcome, key: Path | None) -> None:
    """The final record: every stage's decision and every artefact's digest, signed when there is a key."""
    produced = {n for s in run.config.stages for n in s.outputs.values()}
    artifacts: dict[str, dict[str, Any]] = {}
    for entry in run.state["stages"].values():
        for name, digest in {**entry["inputs"], **entry["outputs"]}.items():
            artifacts[name] = {"digest": digest, "produced": name in produced, "path": str(run.path(name))}
    record = {
        "type": "modelshield pipeline run",
        "pipeline": run.config.name,
        "run_id": run.state["run_id"],
        "status": outcome.status,
        "stopped_at": outcome.stopped_at,
        "reason": outcome.reason,
        "started": run.state["started"],
        "ended": run.state["ended"],
        "stages": [
            {k: v for k, v in s.items() if k not in ("findings",)} | {"findings": len(s.get("findings", []))}
            for s in outcome.stages
        ],
        "artifacts": artifacts,
    }
    sign_record(record, run.dir, key)


__all__ = ["RunOutcome", "run_pipeline"]

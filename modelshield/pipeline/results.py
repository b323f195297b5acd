"""What a stage gets (``StageContext``) and what it hands back (``StageResult``): shared by stages and runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelshield.core.findings import Finding
from modelshield.pipeline.config import Stage

Status = Literal["passed", "failed", "skipped"]


@dataclass
class StageResult:
    """A stage's outcome: ``failed`` means its gate stopped the pipeline, and ``reason`` says why in one line.

    ``details`` holds the figures the gate looked at (JSON values), ``findings`` what a report or SIEM shows."""

    status: Status
    reason: str
    findings: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "findings": [f.model_dump(mode="json") for f in self.findings],
            "details": self.details,
        }


@dataclass
class StageContext:
    """Where a stage reads and writes: every artefact known so far by name, and the run's folders."""

    stage: Stage
    artifacts: dict[str, Path]
    run_dir: Path
    base: Path  # the pipeline file's folder: relative paths in a policy start here
    key: Path | None
    earlier: dict[str, dict[str, Any]]  # stage name → kind and details of a stage that already passed

    def input(self, role: str) -> Path:
        return self.artifacts[self.stage.inputs[role]]

    def optional(self, role: str) -> Path | None:
        return self.input(role) if role in self.stage.inputs else None

    def output(self, role: str) -> Path:
        """The path for an output: ``RUN_DIR/artifacts/<name>`` (a stage writes it whole or not at all)."""
        return self.run_dir / "artifacts" / self.stage.outputs[role]

    def work(self) -> Path:
        """Scratch space for this stage (checkpoints and the like), kept out of the artefacts."""
        path = self.run_dir / "work" / self.stage.name
        path.mkdir(parents=True, exist_ok=True)
        return path


__all__ = ["StageContext", "StageResult", "Status"]

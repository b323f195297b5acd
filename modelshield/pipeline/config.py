"""``pipeline.yaml``: the stages of a secure ML lifecycle, in order, each with its artefacts and its gate.

A pipeline names its external inputs under ``artifacts`` (paths relative to the file) and lists stages. Each
stage has a unique ``name``, a ``kind`` (what library call it makes), ``inputs`` and ``outputs`` as
``role: artefact`` maps, and a ``policy``: its settings and the gate that stops the pipeline. An input must be
an external artefact or the output of an earlier stage; every output name is new. Every problem is reported on
one line naming where it is (``stages[3].policy.fail_under``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelshield.core.errors import InputError, MissingFileError, validation_line
from modelshield.core.files import load_yaml

ARTIFACT_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThreatPolicy(_Strict):
    """``threat check --fail-on``: an open finding at or above ``fail_on`` stops the pipeline."""

    fail_on: Literal["info", "low", "medium", "high", "critical"] = "high"


class IngestPolicy(_Strict):
    """The ingestion screen (``modelshield ingest``) and how much of a batch it may quarantine."""

    label: str | None = None
    max_quarantined_fraction: float = Field(0.01, ge=0, le=1)
    fail_on_drift: bool = True
    fpr: float = Field(0.01, gt=0, lt=1)


class ScanPolicy(_Strict):
    """The static model-file scan; ``allow`` lists verdicts that pass besides ``safe`` (never ``unsafe``)."""

    allow: list[Literal["unknown", "unparsed"]] = Field(default_factory=list)


class TrainPolicy(_Strict):
    """How the model is trained: adversarially (``pgd``, ``trades``, …) through ``defenses.training``, with
    DP-SGD (``dp``) through ``privacy.dp``, or plainly (``standard``, no defence at all). ``monitor`` checks
    what the training loop reads (``monitor.training``); an alarm beyond ``monitor_z`` fails the stage."""

    method: str = "pgd"
    arch: str | None = Field(None, description="'package.module:Class'; default: the base model's")
    arch_kwargs: dict[str, Any] | None = None
    eps: float | None = Field(None, gt=0)
    steps: int | None = Field(None, ge=1)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    epsilon: float | None = Field(None, gt=0, description="DP target ε (method dp)")
    delta: float = Field(1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    input_shape: list[int] | None = None
    bounds: tuple[float, float] = (0.0, 1.0)
    label: str | None = None
    seed: int = 0
    monitor: bool = True
    monitor_z: float = Field(5.0, gt=0)


class AssessPolicy(_Strict):
    """``modelshield assess`` at L∞ ``eps``; ``fail_under`` maps an attack to the robust accuracy it must keep."""

    eps: float = Field(0.1, gt=0)
    fail_under: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=lambda: {"pgd": 0.5})
    samples: int = Field(200, ge=1)
    steps: int = Field(20, ge=1)
    label: str | None = None
    seed: int = 0


class PrivacyPolicy(_Strict):
    """A membership-inference audit (``privacy.audit``): the ε the attack demonstrates and its advantage."""

    max_epsilon: float | None = Field(None, gt=0)
    max_advantage: float | None = Field(None, ge=0, le=1)
    samples: int = Field(300, ge=10)
    confidence: float = Field(0.95, gt=0, lt=1)
    label: str | None = None
    seed: int = 0


class SbomPolicy(_Strict):
    """A CycloneDX SBOM of model, data and environment, audited offline against an OSV export."""

    advisories: Path | None = None
    fail_on: Literal["low", "medium", "high", "critical"] = "high"
    ignore: list[str] = Field(default_factory=list)
    licence: str | None = None


class SignPolicy(_Strict):
    """OpenSSF model-signing signature over the model folder (the key comes from ``key:`` or ``--key``)."""


class RegisterPolicy(_Strict):
    """Record the signed model in the registry (``db``: a SQLAlchemy URL; relative SQLite paths are the run's)."""

    model_name: str
    owner: str
    db: str | None = None


class DeployPolicy(_Strict):
    """Promote the version the run registered: ``staged``, then ``production`` if asked."""

    stage: Literal["staged", "production"] = "production"


POLICIES: dict[str, type[_Strict]] = {
    "threat": ThreatPolicy,
    "ingest": IngestPolicy,
    "scan": ScanPolicy,
    "train": TrainPolicy,
    "assess": AssessPolicy,
    "privacy": PrivacyPolicy,
    "sbom": SbomPolicy,
    "sign": SignPolicy,
    "register": RegisterPolicy,
    "deploy": DeployPolicy,
}

#: kind → (input roles it needs, input roles it may take, output roles it writes); scan takes any input role
ROLES: dict[str, tuple[set[str], set[str], set[str]]] = {
    "threat": ({"system"}, {"status"}, set()),
    "ingest": ({"data", "reference"}, set(), {"accepted"}),
    "scan": (set(), set(), set()),
    "train": ({"data"}, {"base"}, {"model"}),
    "assess": ({"model", "data"}, set(), set()),
    "privacy": ({"model", "members", "non_members"}, set(), set()),
    "sbom": ({"model"}, {"data", "test_data"}, {"sbom"}),
    "sign": ({"model"}, set(), {"signature"}),
    "register": ({"model"}, {"signature", "data"}, set()),
    "deploy": (set(), set(), set()),
}

Kind = Literal["threat", "ingest", "scan", "train", "assess", "privacy", "sbom", "sign", "register", "deploy"]


class Stage(_Strict):
    """One step: what it runs (``kind``), on what, what it writes, and the policy its gate applies."""

    name: str = Field(pattern=ARTIFACT_NAME)
    kind: Kind
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    policy: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _roles(self) -> Stage:
        needed, optional, written = ROLES[self.kind]
        if self.kind == "scan" and not self.inputs:
            raise ValueError("a scan stage needs at least one input")
        missing = sorted(needed - set(self.inputs))
        extra = sorted(set(self.inputs) - needed - optional) if self.kind != "scan" else []
        if missing or extra:
            raise ValueError(
                f"kind {self.kind} takes inputs {sorted(needed)}"
                + (f" (and optionally {sorted(optional)})" if optional else "")
                + f", got {sorted(self.inputs)}"
            )
        if set(self.outputs) != written:
            raise ValueError(f"kind {self.kind} writes outputs {sorted(written)}, got {sorted(self.outputs)}")
        try:
            POLICIES[self.kind].model_validate(self.policy)
        except ValidationError as exc:
            raise ValueError(f"policy.{validation_line(exc, _where(tuple(exc.errors()[0]['loc'])))}") from None
        return self

    def typed_policy(self) -> Any:
        """The policy as its kind's model (validated when the stage was)."""
        return POLICIES[self.kind].model_validate(self.policy)


class PipelineConfig(_Strict):
    """A whole pipeline: its name, external artefacts, an optional signing key, and the stages in order."""

    name: str = Field(pattern=ARTIFACT_NAME)
    artifacts: dict[Annotated[str, Field(pattern=ARTIFACT_NAME)], Path] = Field(default_factory=dict)
    key: Path | None = None
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _flow(self) -> PipelineConfig:
        known = set(self.artifacts)
        names: set[str] = set()
        for i, stage in enumerate(self.stages):
            if stage.name in names:
                raise ValueError(f"stages[{i}]: the name {stage.name!r} is used twice")
            names.add(stage.name)
            unknown = sorted(set(stage.inputs.values()) - known)
            if unknown:
                raise ValueError(
                    f"stages[{i}] ({stage.name}): inputs {unknown} are neither artifacts nor outputs of an earlier stage"
                )
            for out in stage.outputs.values():
                if out in known:
                    raise ValueError(f"stages[{i}] ({stage.name}): output {out!r} is already an artefact")
                known.add(out)
        kinds = [s.kind for s in self.stages]
        if "deploy" in kinds and ("register" not in kinds or kinds.index("register") > kinds.index("deploy")):
            raise ValueError("a deploy stage promotes what a register stage before it registered")
        return self


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_pipeline(doc: Any, where: str) -> PipelineConfig:
    """Validate a parsed document; the first problem as one line naming its place."""
    try:
        return PipelineConfig.model_validate(doc)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        place = _where(tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-"))))
        raise InputError(f"{where}: {validation_line(exc, place)}") from None


def load_pipeline(path: Path | str) -> tuple[PipelineConfig, Path]:
    """Read ``pipeline.yaml``; returns the config and the folder its relative paths start from."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p} does not exist")
    doc = load_yaml(p)
    if not isinstance(doc, dict):
        raise InputError(f"{p} must be a mapping with name, artifacts and stages")
    return parse_pipeline(doc, str(p)), p.parent.absolute()


__all__ = ["POLICIES", "ROLES", "PipelineConfig", "Stage", "load_pipeline", "parse_pipeline"]

"""Model cards (Mitchell et al., 2019) from the evidence: HTML for people, CycloneDX 1.6 ``modelCard`` for tools.

Google's Model Card Toolkit, the reference implementation, is dormant; CycloneDX's ``modelCard`` object was
derived from its schema and is what SBOM tooling reads, so the machine-readable card is a CycloneDX 1.6 BOM
whose subject (``metadata.component``) is the model version, built the way ``modelshield sbom`` builds its
model component (``supplychain.sbom.artifact_component``), with the training datasets as ``data`` components.
Mitchell et al.'s sections map onto it: model details → ``modelParameters``; metrics and evaluation →
``quantitativeAnalysis.performanceMetrics`` (clean and robust accuracy, each with its slice); intended use,
users, limitations, trade-offs, ethical considerations → ``considerations``; the privacy and security
figures, which the schema has no field for, → ``modelshield:*`` properties. ``validate_cyclonedx`` checks the
document with cyclonedx-python-lib's strict JSON validator against the 1.6 schema.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from modelshield import __version__
from modelshield.core.errors import DependencyError, InputError
from modelshield.govern.evidence import Evidence
from modelshield.supplychain.sbom import artifact_component, bom_document

Json = dict[str, Any]


def _hashes(digest: str | None) -> list[Json]:
    if digest and digest.startswith("sha256:"):
        return [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]
    return []


def dataset_component(name: str, digest: str | None, records: int | None = None) -> Json:
    """A ``data`` component for a training dataset known by name and digest (the lineage's join key)."""
    short = Path(name).name or name
    component: Json = {"type": "data", "bom-ref": f"data:{short}@{digest or 'unknown'}", "name": short}
    hashes = _hashes(digest)
    if hashes:
        component["hashes"] = hashes
    data: Json = {"type": "dataset", "name": short, "description": f"{name}"}
    if records is not None:
        data["contents"] = {"properties": [{"name": "records", "value": str(records)}]}
    component["data"] = [data]
    return component


def _subject(ev: Evidence) -> Json:
    mv = ev.model
    path = Path(mv.path)
    if path.exists():
        subject = artifact_component(path, "machine-learning-model", mv.name, str(mv.version))
    else:  # the files moved since registration: the card still names the registered digest
        subject = {
            "type": "machine-learning-model",
            "bom-ref": f"machine-learning-model:{mv.name}@{mv.digest}",
            "name": mv.name,
            "version": str(mv.version),
            "hashes": _hashes(mv.digest),
        }
    subject["supplier"] = {"name": mv.owner}
    return subject


def _properties(ev: Evidence) -> list[Json]:
    """The privacy and security figures as ``modelshield:`` name/value pairs (values are strings)."""
    mv, p, s = ev.model, ev.privacy, ev.security
    pairs: list[tuple[str, Any]] = [
        ("modelshield:registry:digest", mv.digest),
        ("modelshield:registry:status", mv.status),
        ("modelshield:registry:owner", mv.owner),
        ("modelshield:registry:registered", mv.created_at),
        ("modelshield:security:signed", str(bool(s.get("signed"))).lower()),
        ("modelshield:privacy:epsilon_spent", p.get("epsilon_spent")),
        ("modelshield:privacy:delta", p.get("delta")),
        ("modelshield:privacy:membership_auc", p.get("membership_auc")),
        ("modelshield:privacy:epsilon_lower_bound", p.get("epsilon_lower_bound")),
        ("modelshield:security:assessment_verdict", (s.get("assessment") or {}).get("verdict")),
        ("modelshield:security:robust_accuracy_min", ev.robust_accuracy),
    ]
    for scan in s.get("scans") or []:
        pairs.append((f"modelshield:security:scan:{scan['stage']}", f"{scan['status']} ({scan['files']} files)"))
    threats = s.get("threats") or {}
    for status, n in sorted((threats.get("counts") or {}).items()):
        pairs.append((f"modelshield:security:threats:{status}", n))
    for source in ev.sources:
        pairs.append(("modelshield:evidence", source))
    return [{"name": k, "value": str(v)} for k, v in pairs if v is not None]


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def cyclonedx_card(ev: Evidence, datasets: list[Json] | None = None) -> Json:
    """The model card as a CycloneDX 1.6 BOM (a dict): the model version as subject with its ``modelCard``."""
    subject = _subject(ev)
    data = datasets or [dataset_component(d, None) for d in ev.model.datasets]
    refs = [d["bom-ref"] for d in data]
    params: Json = {"approach": {"type": "supervised"}}
    if ev.info.get("arch"):
        params["modelArchitecture"] = str(ev.info["arch"])
    if ev.info.get("method"):
        params["architectureFamily"] = f"trained with {ev.info['method']}"
    task = ev.model.metadata.get("task")
    if task:
        params["task"] = str(task)
    if refs:
        params["datasets"] = [{"ref": r} for r in refs]
    if ev.info.get("input_shape"):
        params["inputs"] = [{"format": f"tensor {list(ev.info['input_shape'])}"}]
    if ev.info.get("num_classes"):
        params["outputs"] = [{"format": f"probabilities over {ev.info['num_classes']} classes"}]
    card: Json = {"bom-ref": f"model-card:{ev.model.ref}", "modelParameters": params}
    if ev.performance:
        card["quantitativeAnalysis"] = {
            "performanceMetrics": [
                {"type": m.name, "value": f"{m.value:.4f}", "slice": m.slice} for m in ev.performance
            ]
        }
    c = ev.considerations
    considerations: Json = {
        "users": _strings(c.get("users")),
        "useCases": _strings(c.get("intended_use")),
        "technicalLimitations": _strings(c.get("limitations")) + _strings(c.get("out_of_scope")),
        "performanceTradeoffs": _strings(c.get("tradeoffs")),
        "ethicalConsiderations": [{"name": t} for t in _strings(c.get("ethical_considerations"))],
    }
    considerations = {k: v for k, v in considerations.items() if v}
    if considerations:
        card["considerations"] = considerations
    card["properties"] = _properties(ev)
    subject["modelCard"] = card
    dependencies = [{"ref": subject["bom-ref"], "dependsOn": refs}, *({"ref": r, "dependsOn": []} for r in refs)]
    return bom_document(subject, data, dependencies)


def validate_cyclonedx(document: Json) -> None:
    """Raise ``InputError`` unless ``document`` is valid CycloneDX 1.6 JSON (cyclonedx-python-lib, strict)."""
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:
        raise DependencyError(
            "validating a CycloneDX card needs cyclonedx-python-lib[json-validation]",
            hint="pip install 'modelshield[govern]'",
        ) from None
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    if error is not None:
        raise InputError(f"the CycloneDX card does not validate against the 1.6 schema: {error}")


def html_card(ev: Evidence, lineage: Json | None = None, datasets: list[Json] | None = None) -> str:
    """The card as a self-contained HTML page (Jinja2, autoescaped: every value comes from files)."""
    from jinja2 import Environment

    template = (resources.files("modelshield.govern") / "data" / "card.html.j2").read_text(encoding="utf-8")
    env = Environment(autoescape=True, keep_trailing_newline=True)
    return env.from_string(template).render(
        ev=ev,
        mv=ev.model,
        datasets=datasets or [],
        lineage=lineage,
        robust=ev.robust_accuracy,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        version=__version__,
    )


def json_card(ev: Evidence, lineage: Json | None = None) -> Json:
    """The evidence as plain JSON (what the HTML shows), for scripts."""
    return {"model_card": ev.to_dict(), "lineage": lineage, "generated_by": f"modelshield {__version__}"}

"""One function per stage kind, each a call into the library that owns the step, and each a gate.

A stage returns ``failed`` with a one-line reason when its policy is not met (an open high threat, too many
records quarantined, an unsafe file, a training loop whose data access raised an alarm, robust accuracy under
the bar, a leaking model, a vulnerable dependency, a registered model whose files changed); it raises only on bad input (a missing file, a broken key), which the
runner reports as an error rather than a gate. Outputs are written whole or not at all: into scratch space
first, then moved into ``RUN_DIR/artifacts``.
"""

from __future__ import annotations

import json
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield.core.errors import InputError, IntegrityError
from modelshield.core.findings import Finding
from modelshield.core.severity import Severity
from modelshield.pipeline.config import (
    AssessPolicy,
    DeployPolicy,
    IngestPolicy,
    PrivacyPolicy,
    RegisterPolicy,
    SbomPolicy,
    ScanPolicy,
    ThreatPolicy,
    TrainPolicy,
)
from modelshield.pipeline.results import StageContext, StageResult

if TYPE_CHECKING:
    from modelshield.core.datasets import Dataset
    from modelshield.core.model import TorchModel
    from modelshield.monitor.training import DataAccessMonitor, Sampling

MODEL_JSON = "model.json"
WEIGHTS = "model.safetensors"
DATA_ACCESS = "data-access.json"


def _passed(reason: str, findings: list[Finding] | None = None, **details: Any) -> StageResult:
    return StageResult("passed", reason, findings or [], details)


def _failed(reason: str, findings: list[Finding] | None = None, **details: Any) -> StageResult:
    return StageResult("failed", reason, findings or [], details)


def _first(items: list[str], n: int = 3) -> str:
    return "; ".join(items[:n]) + (f"; and {len(items) - n} more" if len(items) > n else "")


def _model_info(folder: Path) -> dict[str, Any]:
    """The sidecar a train stage writes beside the weights: architecture, input shape, bounds (our own JSON)."""
    path = folder / MODEL_JSON
    if not path.is_file():
        raise InputError(f"{folder} is not a model folder: it has no {MODEL_JSON} (write one with a train stage)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(info, dict) or not info.get("arch"):
        raise InputError(f"{path} does not name the architecture ('arch': 'package.module:Class')")
    return info


def _load_model(folder: Path) -> tuple[TorchModel, dict[str, Any]]:
    """The model in a folder, loaded by ``integrity.safe_load.load_model`` (signature checked, never unpickled)."""
    from modelshield.core.model import TorchModel
    from modelshield.integrity.safe_load import load_model

    info = _model_info(folder)
    bounds = info.get("bounds") or (0.0, 1.0)
    model = load_model(
        folder / WEIGHTS,
        arch=info["arch"],
        arch_kwargs=info.get("arch_kwargs"),
        input_shape=tuple(info["input_shape"]),
        bounds=(float(bounds[0]), float(bounds[1])),
        allow_unverified=True,  # inside the pipeline the model is unsigned until the sign stage
    )
    if not isinstance(model, TorchModel):
        raise InputError(f"{folder / WEIGHTS} is not PyTorch weights")
    return model, info


def _dataset(path: Path, label: str | None, shape: list[int] | None, bounds: tuple[float, float]) -> Dataset:
    from modelshield.core.datasets import load_dataset

    return load_dataset(str(path), label_column=label, bounds=bounds, input_shape=shape)


def _publish(tmp: Path, dst: Path) -> None:
    """Move a finished output into place (replacing what a failed earlier attempt may have left)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir():
        shutil.rmtree(dst)
    elif dst.exists():
        dst.unlink()
    tmp.replace(dst)


def threat(ctx: StageContext) -> StageResult:
    """``modelshield threat check --fail-on``: the threat model must have no open finding at the bar."""
    from modelshield.threat import analyse, builtin_rules, load_system
    from modelshield.threat.status import load_decisions

    policy: ThreatPolicy = ctx.stage.typed_policy()
    status = ctx.optional("status")
    report = analyse(load_system(ctx.input("system")), [builtin_rules()], load_decisions(status) if status else {})
    bar = Severity(policy.fail_on)
    open_ = report.open_at_least(bar)
    findings = [
        Finding(
            id=f.rule,
            title=f.title,
            description=f"{f.id} on {f.element}: {f.description}",
            metric=f.element,
            severity=f.severity,
            atlas=f.atlas,
            owasp_ml=f.owasp,
            remediation="; ".join(m.control or "" for m in f.mitigations),
            evidence={"finding": f.id, "status": f.status.value},
        )
        for f in report.findings
    ]
    details = {"system": report.system, "counts": report.counts(), "open_at_or_above": len(open_)}
    if open_:
        names = [f"{f.id} {f.rule} on {f.element} ({f.severity.value})" for f in open_]
        return _failed(f"{len(open_)} open threat(s) at or above {bar.value}: {_first(names)}", findings, **details)
    return _passed(f"no open threat at or above {bar.value} ({len(report.findings)} findings)", findings, **details)


def ingest(ctx: StageContext) -> StageResult:
    """``modelshield ingest``: screen the batch against the trusted reference; quarantine what looks poisoned."""
    from modelshield.ingest import IngestConfig
    from modelshield.ingest import ingest as run_ingest

    policy: IngestPolicy = ctx.stage.typed_policy()
    config = IngestConfig(
        reference=ctx.input("reference"), label=policy.label, fpr=policy.fpr, job=f"pipeline.{ctx.stage.name}"
    )
    result = run_ingest(ctx.input("data"), ctx.work(), config)
    fraction = result.quarantined / result.records if result.records else 0.0
    details = {
        "records": result.records,
        "accepted": result.accepted,
        "quarantined": result.quarantined,
        "quarantined_fraction": round(fraction, 6),
        "quarantined_by_check": result.report["quarantined_by_check"],
        "drifted": result.drifted,
        "report": str(result.outputs["report_json"]),
        "quarantine": str(result.outputs["quarantine"]),
    }
    findings = [
        Finding(
            id="MS-INGEST-QUARANTINE",
            title="Records quarantined on ingestion",
            description=f"{result.quarantined} of {result.records} records held back ({result.report['reasons']})",
            metric="quarantined_fraction",
            value=fraction,
            threshold=policy.max_quarantined_fraction,
            severity=Severity.high if fraction > policy.max_quarantined_fraction else Severity.info,
            atlas=["AML.T0020"],
            owasp_ml=["ML02"],
            remediation="Review the quarantined records; find where the batch came from before training on it.",
            evidence={"by_check": result.report["quarantined_by_check"]},
        )
    ]
    if fraction > policy.max_quarantined_fraction:
        by = ", ".join(f"{k} {n}" for k, n in result.report["quarantined_by_check"].items())
        return _failed(
            f"{result.quarantined} of {result.records} records quarantined ({fraction:.1%} > "
            f"{policy.max_quarantined_fraction:.1%}; {by}): the batch looks poisoned, see {details['quarantine']}",
            findings,
            **details,
        )
    if policy.fail_on_drift and result.drifted:
        return _failed(f"distribution drift against the reference in {_first(result.drifted)}", findings, **details)
    tmp = ctx.work() / "accepted.tmp"
    shutil.copyfile(result.outputs["accepted"], tmp)
    _publish(tmp, ctx.output("accepted"))
    return _passed(
        f"{result.accepted} of {result.records} records accepted ({fraction:.1%} quarantined)", findings, **details
    )


def scan(ctx: StageContext) -> StageResult:
    """``modelshield scan``: every input file read by content; a pickle that imports code stops the pipeline."""
    from modelshield.integrity import scan_paths

    policy: ScanPolicy = ctx.stage.typed_policy()
    report = scan_paths([ctx.artifacts[name] for name in ctx.stage.inputs.values()])
    allowed = {"safe", *policy.allow}
    bad = [f for f in report.files if f.verdict.value not in allowed]
    findings = [finding for f in report.files for finding in f.findings]
    details = {
        "files": {f.path: {"format": f.format, "verdict": f.verdict.value} for f in report.files},
        "refused": [f.path for f in bad],
    }
    if bad:
        why = [f"{f.findings[0].description} ({f.format}, {f.verdict.value})" for f in bad if f.findings]
        return _failed(
            f"{len(bad)} file(s) failed the scan: {_first(why or [f.path for f in bad])}", findings, **details
        )
    return _passed(f"{len(report.files)} file(s) scanned, all {' or '.join(sorted(allowed))}", findings, **details)


def train(ctx: StageContext) -> StageResult:
    """Train (or fine-tune ``base``): adversarially through ``defenses.training``, or with DP-SGD (``privacy.dp``)."""
    import torch

    from modelshield.core.loading import build_arch
    from modelshield.core.model import TorchModel

    policy: TrainPolicy = ctx.stage.typed_policy()
    base = ctx.optional("base")
    info: dict[str, Any] = {"arch": policy.arch, "arch_kwargs": policy.arch_kwargs}
    if base is not None and policy.arch is None:
        info = _model_info(base)
    if not info.get("arch"):
        raise InputError(f"stage {ctx.stage.name}: give a base model or policy.arch ('package.module:Class')")
    shape = policy.input_shape or info.get("input_shape")
    data = _dataset(ctx.input("data"), policy.label, shape, policy.bounds)
    torch.manual_seed(policy.seed)
    if base is not None and policy.arch is None:
        model, _ = _load_model(base)
        for p in model.module.parameters():
            p.requires_grad_(True)
    else:
        net = build_arch(info["arch"], info.get("arch_kwargs"))
        model = TorchModel(
            net, input_shape=tuple(data.x.shape[1:]), num_classes=int(data.y.max()) + 1, bounds=policy.bounds
        )
    tmp = ctx.work() / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sidecar = {
        "arch": info["arch"],
        "arch_kwargs": info.get("arch_kwargs"),
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "bounds": list(policy.bounds),
        "method": policy.method,
        "trained_on": str(ctx.input("data")),
    }
    watch = _monitor(policy)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small network on a busy CPU trains several times faster on one thread
    try:
        with watch.audit_files() if watch is not None else nullcontext():
            if policy.method == "dp":
                details = _train_dp(model, data, policy, tmp, sidecar, watch)
            else:
                details = _train_robust(model, data, policy, tmp, sidecar, ctx.work() / "checkpoints", watch)
    finally:
        torch.set_num_threads(threads)
    trained = f"trained with {policy.method} for {policy.epochs} epoch(s) on {len(data)} records"
    if watch is not None:
        details["data_access"] = _data_access(watch, ctx.work() / DATA_ACCESS)
        if watch.alarms:  # the model stays in the stage's scratch space: it is not handed on
            return _failed(
                f"{trained}, but its data access raised {len(watch.alarms)} alarm(s): "
                + _first([f"epoch {a.epoch} {a.check}: {a.message}" for a in watch.alarms], 2),
                [_data_access_finding(watch)],
                **details,
            )
    _publish(tmp, ctx.output("model"))
    return _passed(trained, [], **details)


def _monitor(policy: TrainPolicy) -> DataAccessMonitor | None:
    """The data-access monitor for the training loop (sized by the loop when it starts), or None when off."""
    if not policy.monitor:
        return None
    from modelshield.monitor.training import DataAccessMonitor

    sampling: Sampling = "poisson" if policy.method == "dp" else "shuffle"
    return DataAccessMonitor(None, policy.batch_size, sampling=sampling, z_limit=policy.monitor_z)


def _data_access(watch: DataAccessMonitor, path: Path) -> dict[str, Any]:
    """The monitor's summary, whole in the stage's work folder and in brief in its details."""
    from modelshield.defenses.training.history import write_json_atomic

    summary = watch.summary()
    write_json_atomic(path, summary)
    epochs = summary["epochs"]
    return {
        "sampling": summary["sampling"],
        "epochs": len(epochs),
        "batches": sum(e["batches"] for e in epochs),
        "coverage": [e["coverage"] for e in epochs],
        "expected_coverage": [e["expected_coverage"] for e in epochs],
        "max_reads": max((e["max_reads"] for e in epochs), default=0),
        "files_outside_python": summary["files_outside_python"],
        "alarms": summary["alarms"],
        "summary": str(path),
    }


def _data_access_finding(watch: DataAccessMonitor) -> Finding:
    checks = sorted({a.check for a in watch.alarms})
    return Finding(
        id="MS-TRAIN-DATA-ACCESS",
        title="The training loop's data access is not a correct sampler's",
        description=f"{len(watch.alarms)} data-access alarm(s) during training ({', '.join(checks)}): the order, "
        "batches or files read differ from what the configured sampler produces",
        metric="alarms",
        value=float(len(watch.alarms)),
        threshold=0.0,
        severity=Severity.high,
        atlas=["AML.T0020"],
        owasp_ml=["ML02"],
        remediation="Find what changed the sampler or data loader (a data-ordering attack needs no access to the "
        "weights), fix it and train again.",
        evidence={"alarms": watch.summary()["alarms"]},
    )


def _train_robust(
    model: TorchModel,
    data: Dataset,
    policy: TrainPolicy,
    out: Path,
    sidecar: dict[str, Any],
    checkpoints: Path,
    watch: DataAccessMonitor | None,
) -> dict[str, Any]:
    from modelshield.core.loading import save_torch_model
    from modelshield.defenses.training import TrainConfig, make_trainer
    from modelshield.defenses.training.history import write_json_atomic

    trainer = make_trainer(policy.method, eps=policy.eps, steps=policy.steps)
    config = TrainConfig(
        epochs=policy.epochs,
        batch_size=policy.batch_size,
        lr=policy.lr,
        seed=policy.seed,
        val_fraction=0.0,
        checkpoint_dir=checkpoints,
        progress=False,
    )
    config.validate()
    result = trainer.fit(model, data, config, data_observer=watch)
    save_torch_model(model, out / WEIGHTS)
    write_json_atomic(out / MODEL_JSON, {**sidecar, "params": trainer.params()})
    last = result.history[-1] if result.history else None
    return {
        "method": policy.method,
        "params": trainer.params(),
        "epochs": len(result.history),
        "final_loss": getattr(last, "loss", None),
    }


def _train_dp(
    model: TorchModel,
    data: Dataset,
    policy: TrainPolicy,
    out: Path,
    sidecar: dict[str, Any],
    watch: DataAccessMonitor | None,
) -> dict[str, Any]:
    from modelshield.privacy.dp import save_dp_model, train_dp

    if policy.epsilon is None:
        raise InputError("method dp needs policy.epsilon, the privacy budget training may spend")
    net, report = train_dp(
        model.module,
        data.x,
        data.y,
        epsilon=policy.epsilon,
        delta=policy.delta,
        epochs=policy.epochs,
        batch_size=policy.batch_size,
        max_grad_norm=policy.max_grad_norm,
        lr=policy.lr,
        optimizer="adam",
        seed=policy.seed,
        data_observer=watch,
    )
    save_dp_model(net, report, out, sidecar)
    return {"method": "dp", "epsilon": report.epsilon, "delta": report.delta, "steps": report.steps}


def assess(ctx: StageContext) -> StageResult:
    """``modelshield assess`` at the policy's ε: each attack in ``fail_under`` must leave that robust accuracy."""
    from modelshield.assess.config import AssessConfig
    from modelshield.assess.runner import assess as run_assess

    policy: AssessPolicy = ctx.stage.typed_policy()
    model, info = _load_model(ctx.input("model"))
    data = _dataset(ctx.input("data"), policy.label, info["input_shape"], model.bounds).subset(
        policy.samples, policy.seed
    )
    config = AssessConfig(
        eps_linf=(policy.eps,),
        eps_l2=(),
        gating_eps=policy.eps,
        fail_under=min(policy.fail_under.values(), default=None),
        attacks=tuple(policy.fail_under),
        pgd_steps=policy.steps,
        seed=policy.seed,
        examples=0,
        command=f"modelshield pipeline run (stage {ctx.stage.name})",
    )
    result, _ = run_assess(model, data, config)
    robust = {
        r.attack: r.robust_accuracy for r in result.attacks if r.eps is not None and abs(r.eps - policy.eps) < 1e-12
    }
    details = {
        "eps": policy.eps,
        "samples": len(data),
        "clean_accuracy": result.clean_accuracy,
        "robust_accuracy": robust,
        "verdict": result.verdict,
    }
    short = [
        f"{name} {robust[name]:.3f} < {bar:g}" if name in robust else f"{name} did not run"
        for name, bar in policy.fail_under.items()
        if robust.get(name, -1.0) < bar
    ]
    if short:
        return _failed(
            f"robust accuracy at L∞ ε={policy.eps:g} below the bar: {_first(short)}", result.findings, **details
        )
    if result.verdict == "UNTRUSTED":
        flags = [f.name for f in result.sanity if not f.passed]
        return _failed(
            f"the assessment cannot be trusted (gradient masking suspected: {_first(flags)})",
            result.findings,
            **details,
        )
    shown = ", ".join(f"{k} {v:.3f}" for k, v in robust.items())
    return _passed(
        f"clean {result.clean_accuracy:.3f}, robust at ε={policy.eps:g}: {shown}", result.findings, **details
    )


def privacy(ctx: StageContext) -> StageResult:
    """A membership audit (``privacy.audit``): training members against unseen records, ε bounded from below."""
    import numpy as np
    import torch

    from modelshield.attacks.privacy import LossThreshold
    from modelshield.privacy.audit import audit_model

    policy: PrivacyPolicy = ctx.stage.typed_policy()
    model, info = _load_model(ctx.input("model"))
    shape, bounds = info["input_shape"], model.bounds
    members = _dataset(ctx.input("members"), policy.label, shape, bounds).subset(policy.samples, policy.seed)
    others = _dataset(ctx.input("non_members"), policy.label, shape, bounds).subset(policy.samples, policy.seed)
    claimed = (info.get("privacy") or {}).get("epsilon")
    delta = float((info.get("privacy") or {}).get("delta", 0.0))
    x, y = torch.cat([members.x, others.x]), torch.cat([members.y, others.y])
    is_member = np.r_[np.ones(len(members), bool), np.zeros(len(others), bool)]
    (audit,) = audit_model(
        model,
        x,
        y,
        is_member,
        [LossThreshold()],
        role="candidate",
        epsilon=claimed,
        delta=delta,
        confidence=policy.confidence,
    )
    advantage = float(np.max(audit.roc.tpr - audit.roc.fpr))
    details = {
        "attack": audit.attack,
        "members": len(members),
        "non_members": len(others),
        "auc": audit.roc.auc,
        "advantage": advantage,
        "epsilon_lower_bound": audit.bound.epsilon,
        "epsilon_claimed": claimed,
    }
    finding = Finding(
        id="MS-PRIVACY-MEMBERSHIP",
        title="Membership inference on the training data",
        description=f"{audit.attack}: AUC {audit.roc.auc:.3f}, advantage {advantage:.3f}, "
        f"ε ≥ {audit.bound.epsilon:.3f} at {policy.confidence:.0%} confidence",
        metric="advantage",
        value=advantage,
        threshold=policy.max_advantage,
        severity=Severity.info,
        atlas=["AML.T0024.000"],
        owasp_ml=["ML04"],
        remediation="Train with DP-SGD (modelshield train --dp) or regularise; audit again.",
    )
    problems = []
    if policy.max_advantage is not None and advantage > policy.max_advantage:
        problems.append(f"membership advantage {advantage:.3f} > {policy.max_advantage:g}")
    if policy.max_epsilon is not None and audit.bound.epsilon > policy.max_epsilon:
        problems.append(f"demonstrated ε ≥ {audit.bound.epsilon:.2f} > {policy.max_epsilon:g}")
    if policy.max_epsilon is not None and claimed is not None and claimed > policy.max_epsilon:
        problems.append(f"DP budget spent ε={claimed:.2f} > {policy.max_epsilon:g}")
    if audit.contradicts_accountant:
        problems.append(f"the attack shows more leakage (ε ≥ {audit.bound.epsilon:.2f}) than DP allows ({claimed})")
    if problems:
        finding = finding.model_copy(update={"severity": Severity.high})
        return _failed(f"the model leaks its training data: {_first(problems)}", [finding], **details)
    return _passed(
        f"membership advantage {advantage:.3f}, ε ≥ {audit.bound.epsilon:.3f} demonstrated", [finding], **details
    )


def sbom(ctx: StageContext) -> StageResult:
    """``modelshield sbom`` (CycloneDX 1.6) and ``deps audit --osv``: no known vulnerability at the bar."""
    from modelshield.supplychain.osv import load_advisories
    from modelshield.supplychain.sbom import build_sbom, write_sbom
    from modelshield.supplychain.vulns import audit_offline, sbom_packages

    policy: SbomPolicy = ctx.stage.typed_policy()
    datasets = [ctx.input(role) for role in ("data", "test_data") if role in ctx.stage.inputs]
    doc = build_sbom(ctx.input("model"), name=ctx.stage.inputs["model"], licence=policy.licence, datasets=datasets)
    tmp = write_sbom(doc, ctx.work() / "sbom.tmp")
    _publish(tmp, ctx.output("sbom"))
    packages = [p for p, _ in sbom_packages(doc)]
    details: dict[str, Any] = {"components": len(doc["components"]), "packages": len(packages)}
    if policy.advisories is None:
        note = "dependency audit not run: the policy names no OSV export (advisories:)"
        finding = Finding(
            id="MS-SBOM-UNAUDITED",
            title="Dependencies not audited",
            description=note,
            metric="packages",
            value=len(packages),
            severity=Severity.low,
            owasp_ml=["ML06"],
            remediation="Give policy.advisories an OSV export (PyPI/all.zip).",
        )
        return _passed(f"SBOM of {len(packages)} packages written; {note}", [finding], **details)
    report = audit_offline(packages, load_advisories(ctx.base / policy.advisories))
    accepted = set(policy.ignore)
    report.vulnerabilities = [v for v in report.vulnerabilities if not accepted & {v.id, *v.aliases}]
    failing = report.failing(policy.fail_on)
    details.update(
        vulnerabilities=len(report.vulnerabilities), failing=[f"{v.package} {v.version}: {v.id}" for v in failing]
    )
    findings = [
        Finding(
            id=v.id,
            title=v.summary or v.id,
            description=f"{v.package} {v.version}: {v.id} ({v.severity})",
            metric=v.package,
            value=v.score,
            severity=Severity(v.severity) if v.severity in Severity.__members__ else Severity.high,
            owasp_ml=["ML06"],
            remediation=f"upgrade to {', '.join(v.fixed_in)}" if v.fixed_in else "no fixed version yet",
        )
        for v in report.vulnerabilities
    ]
    if failing:
        return _failed(
            f"{len(failing)} known vulnerabilit(y/ies) at or above {policy.fail_on}: {_first(details['failing'])}",
            findings,
            **details,
        )
    return _passed(
        f"SBOM of {len(packages)} packages; none vulnerable at or above {policy.fail_on}", findings, **details
    )


def _public_key(ctx: StageContext) -> Path:
    from modelshield.pipeline.record import public_key_file

    if ctx.key is None:
        raise InputError(f"stage {ctx.stage.name} signs: give a private key (pipeline key: or --key)")
    return public_key_file(ctx.key, ctx.run_dir)


def sign(ctx: StageContext) -> StageResult:
    """``modelshield sign``: an OpenSSF model-signing signature over the model folder, verified at once."""
    from modelshield.integrity.signing import sign_model, verify_model

    public = _public_key(ctx)
    assert ctx.key is not None
    tmp = sign_model(ctx.input("model"), ctx.key, signature_path=ctx.work() / "model.sig")
    verified = verify_model(ctx.input("model"), public, signature_path=tmp)
    _publish(tmp, ctx.output("signature"))
    return _passed(
        f"signed {len(verified.files)} file(s); the signature verifies",
        [],
        files=sorted(verified.files),
        public_key=str(public),
    )


def _db_url(db: str | None, base: Path) -> str | None:
    """A relative SQLite path is the pipeline folder's, so the registry stays where the pipeline lives."""
    prefix = "sqlite:///"
    if db and db.startswith(prefix) and not db.startswith(prefix + "/") and db != prefix + ":memory:":
        return prefix + str(base / db.removeprefix(prefix))
    return db


def register(ctx: StageContext) -> StageResult:
    """``modelshield registry register``: the signature must verify before the version is accepted."""
    from modelshield.registry import Registry

    policy: RegisterPolicy = ctx.stage.typed_policy()
    signature = ctx.optional("signature")
    public = _public_key(ctx) if signature is not None else None
    datasets = [str(ctx.input("data"))] if "data" in ctx.stage.inputs else []
    url = _db_url(policy.db, ctx.base)
    with Registry.open(url) as reg:
        mv = reg.register(
            policy.model_name,
            ctx.input("model"),
            owner=policy.owner,
            datasets=datasets,
            signature=signature,
            public_key=public,
            metadata={"pipeline_run": ctx.run_dir.name, "stage": ctx.stage.name},
            actor="modelshield-pipeline",
        )
    return _passed(
        f"registered {mv.ref} ({mv.digest[:19]}…)", [], name=mv.name, version=mv.version, digest=mv.digest, db=url
    )


def deploy(ctx: StageContext) -> StageResult:
    """Promote the version this run registered, after re-hashing it: changed files quarantine it instead."""
    from modelshield.registry import Registry

    policy: DeployPolicy = ctx.stage.typed_policy()
    registered = [d for d in ctx.earlier.values() if d.get("kind") == "register"]
    if not registered:
        raise InputError(f"stage {ctx.stage.name}: no register stage passed before it")
    entry = registered[-1]
    with Registry.open(entry["db"]) as reg:
        mv = reg.get(entry["name"], entry["version"])
        try:
            reg.verify(mv, actor="modelshield-pipeline")
        except IntegrityError as exc:
            return _failed(
                f"{mv.ref} no longer matches what was registered, now quarantined: {exc}",
                [],
                name=mv.name,
                version=mv.version,
            )
        steps = ("staged",) if policy.stage == "staged" else ("staged", "production")
        for step in steps:
            mv = reg.promote(mv.name, mv.version, step, actor="modelshield-pipeline")
    return _passed(
        f"{mv.ref} verified and promoted to {mv.status}", [], name=mv.name, version=mv.version, status=mv.status
    )


__all__ = ["assess", "deploy", "ingest", "privacy", "register", "sbom", "scan", "sign", "threat", "train"]

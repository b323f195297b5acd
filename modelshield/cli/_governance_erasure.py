"""``modelshield govern erase | verify-certificate | retention``: erasure requests with SISA unlearning and a signed
certificate, and retention schedules a scheduler runs. Attached to the ``govern`` group by ``attach``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.core.errors import InputError, IntegrityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelshield.core.model import Model
    from modelshield.govern.erasure import MembershipProbe

DEMO_ARCH = "modelshield.demo:DigitsCNN"
DEMO_SUBJECTS = 300


def membership_probe(holdout_x: np.ndarray, holdout_y: np.ndarray) -> MembershipProbe:
    """A loss-threshold membership score (Yeom et al. 2018) of the erased rows against held-out non-members."""
    import numpy as np
    import torch

    from modelshield.attacks.privacy import LossThreshold

    def probe(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        xs = torch.as_tensor(np.concatenate([x, holdout_x]), dtype=torch.float32)
        ys = torch.as_tensor(np.concatenate([y, holdout_y]), dtype=torch.long)
        member = np.r_[np.ones(len(x)), np.zeros(len(holdout_x))]
        scores = LossThreshold().scores(model, xs, ys)
        summary = LossThreshold().evaluate(model, xs, ys, member)
        return {
            "attack": "loss-threshold (Yeom et al. 2018)",
            "auc": round(summary.auc, 4),
            "erased_mean_loss": round(float(-scores[: len(x)].mean()), 4),
            "holdout_mean_loss": round(float(-scores[len(x) :].mean()), 4),
            "erased": len(x),
            "holdout": len(holdout_x),
        }

    return probe


def demo_table(split: str, seed: int = 0, subjects: int = DEMO_SUBJECTS) -> pd.DataFrame:
    """Digits as a table: 64 pixel columns, label, a record id and a synthetic data-subject column."""
    import numpy as np
    import pandas as pd

    from modelshield.core.datasets import sklearn_dataset

    data = sklearn_dataset("digits", split, seed=seed)
    x = data.x.numpy().reshape(len(data), -1)
    frame = pd.DataFrame(x, columns=[f"pixel{i}" for i in range(x.shape[1])])
    frame["label"] = data.y.numpy()
    frame["record_id"] = [f"{split}-{i:05d}" for i in range(len(frame))]
    rng = np.random.default_rng(seed)
    frame["subject"] = [f"subject-{s:04d}" for s in rng.integers(0, subjects, len(frame))]
    return frame


def run_demo(out: Path, *, epochs: int = 5, shards: int = 5, slices: int = 2, subject: str | None = None) -> Path:
    """Digits with a subject column, a 5-shard SISA CNN, one subject erased; returns the certificate path."""
    from modelshield.govern.erasure import ErasureRequest, ModelTarget, erase, sisa_from_table
    from modelshield.govern.sisa import TorchLearner
    from modelshield.integrity.signing.keys import generate_key_pair

    out.mkdir(parents=True, exist_ok=True)
    key_path = out / "erasure.pem"
    if not key_path.exists():
        generate_key_pair("ed25519", key_path)
    private = _private_key(key_path)
    train, holdout = demo_table("train"), demo_table("test")
    data = out / "data" / "digits.csv"
    data.parent.mkdir(exist_ok=True)
    train.to_csv(data, index=False)
    features = [c for c in train.columns if c.startswith("pixel")]
    sisa_from_table(
        out / "sisa",
        train,
        TorchLearner(DEMO_ARCH, epochs=epochs),
        signing_key=private,
        feature_columns=features,
        input_shape=(1, 8, 8),
        shards=shards,
        slices=slices,
    )
    who = subject or str(train["subject"].iloc[0])
    hx = holdout[features].to_numpy(dtype="float32").reshape(-1, 1, 8, 8)
    request = ErasureRequest(
        who, [data], [ModelTarget("digits-sisa", "sisa", sisa_dir=out / "sisa")], requested_by="modelshield demo"
    )
    result = erase(
        request,
        signing_key=private,
        out=out,
        membership=membership_probe(hx, holdout["label"].to_numpy()),
    )
    return result.certificate


def _private_key(path: Path) -> Ed25519PrivateKey:
    from modelshield.audit.keys import load_private_key

    return load_private_key(path)


def erase_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for certificate.json and tombstones.jsonl.")],
    subject: Annotated[str | None, typer.Option(help="The data subject's id (a value of --subject-column).")] = None,
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="A CSV/Parquet data set holding the subject's rows (repeat).")
    ] = None,
    subject_column: Annotated[str, typer.Option(help="Column naming each row's data subject.")] = "subject",
    id_column: Annotated[str, typer.Option(help="Column with each row's stable record id.")] = "record_id",
    label_column: Annotated[str, typer.Option(help="Label column of the SISA ensemble's training data.")] = "label",
    sisa_dir: Annotated[
        Path | None, typer.Option(help="A SISA ensemble trained on --data: only the affected shards retrain.")
    ] = None,
    retire: Annotated[
        list[str] | None, typer.Option(help="MODEL:VERSION derived from the data to retire in the registry (repeat).")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", envvar="MODELSHIELD_DB_URL", help="Registry and lineage database.")
    ] = None,
    lineage: Annotated[
        bool,
        typer.Option(
            "--lineage/--no-lineage",
            help="Follow the data sets' digests downstream in --db's lineage store; retire the registered versions found.",
        ),
    ] = False,
    audit_db: Annotated[str | None, typer.Option("--audit-db", help="Record the erasure in this audit log.")] = None,
    key: Annotated[Path | None, typer.Option(help="Ed25519 private key (PEM) that signs the certificate.")] = None,
    holdout: Annotated[
        Path | None, typer.Option(help="Non-member rows (same columns) for the membership score before/after.")
    ] = None,
    demo: Annotated[bool, typer.Option(help="Digits, 5-shard SISA CNN, one subject erased, into --out.")] = False,
    epochs: Annotated[int, typer.Option(min=1, help="--demo: training epochs per SISA slice.")] = 5,
) -> None:
    """Erase a data subject: remove their rows (tombstoned by id and digest), unlearn (SISA: affected shards only;
    or retire the derived model versions) and write a signed certificate of what was done."""
    if demo:
        cert = run_demo(out, epochs=epochs)
        _summary(json.loads(_payload(cert)), cert)
        typer.echo(f"verify with: modelshield govern verify-certificate {cert} --public-key {out / 'erasure.pub.pem'}")
        return
    if not subject or not data or key is None:
        raise InputError("give --subject, --data and --key (or --demo)")
    from modelshield.govern.erasure import ErasureRequest, ModelTarget, erase, read_table, sisa_arrays

    targets = []
    if sisa_dir is not None:
        targets.append(ModelTarget(sisa_dir.name, "sisa", sisa_dir=sisa_dir))
    for ref in retire or []:
        name, _, version = ref.partition(":")
        if not version.isdigit():
            raise InputError(f"--retire {ref!r}: give MODEL:VERSION")
        targets.append(ModelTarget(name, "retire", version=int(version)))
    request = ErasureRequest(subject, data, targets, subject_column, id_column, label_column)
    probe = None
    if holdout is not None and sisa_dir is not None:
        from modelshield.govern.sisa import SisaEnsemble

        hx, hy, _, _ = sisa_arrays(read_table(holdout), SisaEnsemble.open(sisa_dir), request)
        probe = membership_probe(hx, hy)
    registry = audit = store = None
    if retire or lineage:
        from modelshield.registry import Registry

        registry = Registry.open(db)
    if lineage:
        from modelshield.govern.lineage import LineageStore

        store = LineageStore.open(db)
    if audit_db is not None:
        from modelshield.audit.log import AuditLog

        audit = AuditLog.open(audit_db)
    try:
        result = erase(
            request,
            signing_key=_private_key(key),
            out=out,
            registry=registry,
            audit=audit,
            membership=probe,
            lineage=store,
            retire_derived=lineage,
        )
    finally:
        if store is not None:
            store.close()
        if registry is not None:
            registry.close()
        if audit is not None:
            audit.close()
    _summary(result.record, result.certificate)


def _payload(cert: Path) -> bytes:
    import base64

    return base64.b64decode(json.loads(cert.read_text())["payload"])


def _summary(record: dict[str, Any], cert: Path) -> None:
    typer.echo(f"subject {record['subject'][:28]}…: {record['records_removed']} record(s) removed")
    for d in record["datasets"]:
        typer.echo(f"  {d['path']}: {d['rows_removed']} of {d['rows_before']} rows, now {d['new_digest'][:19]}…")
    for m in record["models"]:
        line = f"  model {m['model']}: {m['action']}"
        if m["action"] == "sisa":
            line += (
                f", shards {m['shards_retrained']} of {m['shards_total']} retrained, "
                f"{m['sample_epochs']} sample-epochs vs {m['full_retrain_sample_epochs']} for a full retrain"
            )
            if mem := m.get("membership"):
                line += f"; membership AUC {mem['before']['auc']} → {mem['after']['auc']}"
        elif "status" in m:
            line += f" ({m['status']})"
        typer.echo(line)
    typer.echo(f"certificate: {cert}")


def verify_certificate_command(
    certificate: Annotated[Path, typer.Argument(help="certificate.json written by modelshield govern erase.")],
    public_key: Annotated[
        Path | None,
        typer.Option(help="The signer's Ed25519 public key (default: erasure.pub.pem beside the certificate)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the certified record as JSON.")] = False,
) -> None:
    """Check a certificate's signature and that not one byte changed: exit 0 if intact, 1 if not, 2 on bad input."""
    from modelshield.audit.keys import load_public_key
    from modelshield.govern.certificate import verify_certificate

    key_path = public_key or certificate.parent / "erasure.pub.pem"
    if public_key is None:
        typer.echo(f"checking against {key_path}; pass --public-key with a key you trust", err=True)
    key = load_public_key(key_path)
    try:
        record = verify_certificate(certificate, key)
    except IntegrityError as e:
        typer.echo(f"REFUSED: {e}", err=True)
        sys.exit(1)
    if as_json:
        typer.echo(json.dumps(record, indent=2, sort_keys=True))
    else:
        typer.echo(f"OK: {certificate} is intact and signed by {key_path}")
        _summary(record, certificate)


retention_app = typer.Typer(help="Retention schedules: remove rows older than each data set's keep_days.")


@retention_app.command("enforce")
def retention_enforce_command(
    schedule: Annotated[Path, typer.Argument(help="Retention schedule (YAML).")],
    now: Annotated[str | None, typer.Option(help="Enforce as of this ISO-8601 time (default: now, UTC).")] = None,
    report: Annotated[Path | None, typer.Option(help="Also write the report here as JSON.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Apply a retention schedule (a scheduler runs this, e.g. daily); running it twice removes nothing more."""
    from modelshield.govern.retention import enforce, load_schedule

    when = datetime.now(UTC)
    if now is not None:
        try:
            when = datetime.fromisoformat(now)
        except ValueError:
            raise InputError(f"--now {now!r} is not an ISO-8601 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    result = enforce(load_schedule(schedule), when)
    text = json.dumps(result.to_dict(), indent=2, sort_keys=True)
    if report is not None:
        from modelshield.core.files import atomic_output

        with atomic_output(report, mode=0o644) as f:
            f.write(text.encode("utf-8"))
    if as_json:
        typer.echo(text)
        return
    for d in result.datasets:
        typer.echo(
            f"{d.path}: {d.rows_removed} of {d.rows_before} rows past retention ({d.action}), {d.new_digest[:19]}…"
        )
    typer.echo(f"{result.rows_removed} row(s) removed in {len(result.datasets)} data set(s) as of {when.isoformat()}")


def attach(govern_app: typer.Typer) -> None:
    """Add ``erase``, ``verify-certificate`` and ``retention`` to the ``govern`` group."""
    govern_app.command("erase")(erase_command)
    govern_app.command("verify-certificate")(verify_certificate_command)
    govern_app.add_typer(retention_app, name="retention")

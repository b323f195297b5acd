"""Erasure requests (GDPR art. 17): remove a data subject's records, make the models forget them, certify it.

One request names a subject and the data sets and model versions derived from the subject's records (found
through lineage by the caller, or listed explicitly). For each data set the subject's rows are removed by
writing a new version of the file (atomically; the old bytes are replaced, not kept) and a tombstone line is
appended per row: record id, a digest of the row, the request — never the data. For each model version:

- ``sisa``: the SISA ensemble retrains only the shards that held the subject's records (``govern.sisa``);
- ``retrain``: a caller-supplied function retrains the model in full on the remaining data;
- ``retire``: the version is retired in the registry (it can no longer be served) until someone retrains it.

The signed certificate (``govern.certificate``) records what was done, with the membership-inference score of
the erased records before and after when the caller supplies a probe (attacks live above this layer).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelshield.audit.canonical import canonical_json
from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.files import atomic_path, hash_file
from modelshield.govern.certificate import pseudonym_key, subject_pseudonym, write_certificate
from modelshield.govern.lineage import REGISTRY_NAMESPACE

if TYPE_CHECKING:
    import pandas as pd
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelshield.audit.log import AuditLog
    from modelshield.core.model import Model
    from modelshield.govern.lineage import LineageStore
    from modelshield.govern.sisa import SisaEnsemble
    from modelshield.registry import Registry

TABLE_SUFFIXES = (".csv", ".parquet")
Action = Literal["sisa", "retrain", "retire", "flag"]


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes (the digest lineage events carry)."""
    return "sha256:" + hash_file(path)[0]


@dataclass(frozen=True)
class Derived:
    """An artefact lineage says was made (directly or not) from an erased data set."""

    job: str
    namespace: str
    name: str
    digest: str | None

    @property
    def registry_version(self) -> tuple[str, int] | None:
        """``(model, version)`` when this is a registered model version."""
        if self.namespace != REGISTRY_NAMESPACE:
            return None
        model, _, version = self.name.rpartition(":")
        return (model, int(version)) if version.isdigit() else None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "namespace": self.namespace, "name": self.name, "digest": self.digest}


def derived_from(store: LineageStore, digests: Sequence[str], *, depth: int = 32) -> list[Derived]:
    """Everything downstream of ``digests`` in the lineage store: what each COMPLETE run that read them wrote,
    then what read that, and so on (a trained model, its registered version, ...)."""
    found: dict[tuple[str, str, str | None], Derived] = {}
    frontier, seen = list(digests), set(digests)
    for _ in range(depth):
        following: list[str] = []
        for digest in frontier:
            for run in store.downstream(digest):
                for node in run.inputs:  # downstream() puts a run's outputs here
                    ds = node.dataset
                    found.setdefault(
                        (ds.namespace, ds.name, ds.digest), Derived(run.job, ds.namespace, ds.name, ds.digest)
                    )
                    if ds.digest and ds.digest not in seen:
                        seen.add(ds.digest)
                        following.append(ds.digest)
        if not following:
            break
        frontier = following
    return list(found.values())


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a data frame (record ids and subjects read as strings)."""
    import pandas as pd

    if not path.is_file():
        raise MissingFileError(f"data set {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path, low_memory=False)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise InputError(
        f"{path}: erasure and retention handle {' and '.join(TABLE_SUFFIXES)} files, not {suffix or 'this'}"
    )


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Replace ``path`` atomically with ``frame`` in the same format."""
    with atomic_path(path, mode=0o644) as tmp:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def row_digest(row: dict[str, Any], key: bytes | None = None) -> str:
    """SHA-256 (HMAC-SHA-256 under ``key``) of a row's canonical JSON, values as text: proves which row went
    without keeping it; keyed, nobody without the key can confirm a guessed row against the tombstone."""
    data = canonical_json({str(k): str(v) for k, v in row.items()})
    if key is None:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()


@dataclass
class DatasetChange:
    """One data set's new version after rows were removed."""

    path: str
    old_digest: str
    new_digest: str
    rows_before: int
    rows_removed: int
    removed_ids: list[str] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_digest": self.old_digest,
            "new_digest": self.new_digest,
            "rows_before": self.rows_before,
            "rows_removed": self.rows_removed,
        }


def remove_rows(
    path: Path,
    frame: pd.DataFrame,
    drop: np.ndarray,
    *,
    id_column: str | None,
    tombstones: Path | None,
    reason: dict[str, Any],
    digest_key: bytes | None = None,
) -> DatasetChange:
    """Write ``frame`` less the rows where ``drop`` is true over ``path``; tombstone them (id + digest) if asked.

    Nothing is written when no row is dropped, so enforcing twice changes nothing."""
    old = file_digest(path)
    gone = frame[drop]
    ids = [str(v) for v in gone[id_column]] if id_column else [str(i) for i in gone.index]
    if len(gone):
        if tombstones is not None:
            lines = [
                json.dumps({"record_id": rid, "row_digest": row_digest(row, digest_key), **reason}, sort_keys=True)
                for rid, row in zip(ids, gone.to_dict(orient="records"), strict=True)
            ]
            with tombstones.open("a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        write_table(frame[~drop], path)
    return DatasetChange(str(path), old, file_digest(path), len(frame), len(gone), ids)


@dataclass(frozen=True)
class ModelTarget:
    """A model version derived from the data and what to do about it.

    ``sisa``: ``sisa_dir`` holds the ensemble (with ``features``/``label_column`` naming its training columns);
    ``retrain``: ``retrain`` is called with the remaining rows and returns what it did (JSON);
    ``retire``: ``name``/``version`` are retired in the registry; ``flag``: only listed as still to be dealt with."""

    name: str
    action: Action
    version: int | None = None
    sisa_dir: Path | None = None
    retrain: Callable[[pd.DataFrame], dict[str, Any]] | None = None


@dataclass(frozen=True)
class ErasureRequest:
    """Erase ``subject`` (a value of ``subject_column``) from ``data`` and the ``models`` derived from it."""

    subject: str
    data: Sequence[Path]
    models: Sequence[ModelTarget] = ()
    subject_column: str = "subject"
    id_column: str = "record_id"
    label_column: str = "label"
    requested_by: str = ""


MembershipProbe = Callable[["Model", np.ndarray, np.ndarray], dict[str, Any]]
"""Scores the erased rows (inputs, labels) as members of a model: returns e.g. ``{"attack": "loss", "auc": 0.71}``."""


@dataclass
class ErasureResult:
    """The signed certificate's path and the record it certifies."""

    certificate: Path
    record: dict[str, Any]


def sisa_arrays(
    frame: pd.DataFrame, ensemble: SisaEnsemble, request: ErasureRequest
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Features (shaped for the shard models), labels, record ids and groups of ``frame``, by the ensemble's manifest."""
    columns = ensemble.manifest.get("feature_columns")
    shape = ensemble.manifest.get("input_shape")
    if not columns or not shape:
        raise InputError(f"{ensemble.directory} does not name its feature columns; train it with sisa_from_table")
    if missing := [c for c in [*columns, request.label_column, request.id_column] if c not in frame.columns]:
        raise InputError(f"the data set lacks column(s) {', '.join(missing[:5])} the SISA ensemble was trained on")
    x = frame[columns].to_numpy(dtype=np.float32).reshape(len(frame), *shape)
    y = frame[request.label_column].to_numpy(dtype=np.int64)
    ids = [str(v) for v in frame[request.id_column]]
    groups = [str(v) for v in frame[request.subject_column]]
    return x, y, ids, groups


def erase(
    request: ErasureRequest,
    *,
    signing_key: Ed25519PrivateKey,
    out: Path,
    registry: Registry | None = None,
    audit: AuditLog | None = None,
    membership: MembershipProbe | None = None,
    lineage: LineageStore | None = None,
    retire_derived: bool = False,
    now: datetime | None = None,
) -> ErasureResult:
    """Carry out ``request`` and write ``out/certificate.json`` (signed) and ``out/tombstones.jsonl``.

    With ``lineage``, every artefact derived from the data sets is listed in the certificate, and each registered
    model version among them that no target covers is retired in ``registry`` (``retire_derived``) or flagged
    there as to be retrained or retired."""
    from modelshield.govern.sisa import SisaEnsemble

    when = (now or datetime.now(UTC)).astimezone(UTC)
    key = pseudonym_key(signing_key)
    pseudonym = subject_pseudonym(request.subject, key)
    out.mkdir(parents=True, exist_ok=True)
    tombstones = out / "tombstones.jsonl"
    reason = {"reason": "erasure", "subject": pseudonym, "time": when.isoformat()}

    if not request.data:
        raise InputError("an erasure request needs at least one data set")
    frames: dict[Path, pd.DataFrame] = {}
    for path in request.data:
        frame = read_table(Path(path))
        for col in (request.subject_column, request.id_column):
            if col not in frame.columns:
                raise InputError(f"{path} has no column {col!r}", hint="name it with --subject-column / --id-column")
        frames[Path(path)] = frame
    erased = {p: f[f[request.subject_column].astype(str) == request.subject] for p, f in frames.items()}
    ensembles = {
        t.name: SisaEnsemble.open(t.sisa_dir) for t in request.models if t.action == "sisa" and t.sisa_dir is not None
    }
    if any(t.action == "sisa" and t.sisa_dir is None for t in request.models):
        raise InputError("a SISA model target needs its sisa_dir")
    gone = _concat(list(erased.values()))  # empty when the subject has no rows left (a repeated request)

    before: dict[str, Any] = {}
    if membership is not None and len(gone):
        for name, ens in ensembles.items():
            gx, gy, _, _ = sisa_arrays(gone, ens, request)
            before[name] = membership(ens.as_model(tuple(ens.manifest["input_shape"])), gx, gy)

    derived = derived_from(lineage, [file_digest(p) for p in frames]) if lineage is not None else []
    covered = {(t.name, t.version) for t in request.models}
    targets = list(request.models)
    for d in derived:
        ref = d.registry_version
        if ref is not None and ref not in covered:
            covered.add(ref)
            targets.append(ModelTarget(ref[0], "retire" if retire_derived else "flag", version=ref[1]))

    changes = []
    for path, frame in frames.items():
        drop = (frame[request.subject_column].astype(str) == request.subject).to_numpy()
        changes.append(
            remove_rows(
                path, frame, drop, id_column=request.id_column, tombstones=tombstones, reason=reason, digest_key=key
            )
        )
    removed_ids = [rid for c in changes for rid in c.removed_ids]
    remaining = _concat([read_table(p) for p in frames])

    actions = []
    for target in targets:
        entry: dict[str, Any] = {"model": target.name, "version": target.version, "action": target.action}
        if target.action == "sisa":
            ens = ensembles[target.name]
            x, y, ids, groups = sisa_arrays(remaining, ens, request)
            work = ens.unlearn(
                x, y, ids, removed_ids, key=key, groups=groups if ens.manifest.get("placement") == "group" else None
            )
            full = int(ens.manifest.get("full_sample_epochs") or 0)
            entry.update(
                shards_total=ens.shards,
                shards_retrained=work.shards,
                sample_epochs=work.sample_epochs,
                full_retrain_sample_epochs=full,
                work_saved=round(1 - work.sample_epochs / full, 4) if full else None,
                seconds=round(work.seconds, 3),
                checkpoints={s: ens.manifest["checkpoints"][str(s)][-1] for s in map(str, work.shards)},
            )
            if membership is not None and len(gone):
                gx, gy, _, _ = sisa_arrays(gone, ens, request)
                after = membership(ens.as_model(tuple(ens.manifest["input_shape"])), gx, gy)
                entry["membership"] = {"before": before[target.name], "after": after}
        elif target.action == "retrain":
            if target.retrain is None:
                raise InputError(f"model {target.name}: action retrain needs a retrain function")
            entry["retrain"] = target.retrain(remaining)
        elif target.action == "retire":
            if registry is None or target.version is None:
                entry["status"] = "to-be-retired (no registry given)"
            else:
                entry["status"] = registry.retire(target.name, target.version, actor="govern.erase").status
        elif target.action == "flag":
            entry["status"] = "derived from the erased records: retrain it without them, or retire it"
        else:
            raise InputError(
                f"model {target.name}: action must be sisa, retrain, retire or flag, not {target.action!r}"
            )
        actions.append(entry)

    body: dict[str, Any] = {
        "subject": pseudonym,
        "subject_pseudonym": "HMAC-SHA-256 under a key derived from the signing key",
        "requested_at": when.isoformat(),
        "requested_by": request.requested_by,
        "records_removed": len(removed_ids),
        "tombstones": {"path": tombstones.name, "digest": file_digest(tombstones) if tombstones.exists() else None},
        "datasets": [c.to_dict() for c in changes],
        "models": actions,
        "derived": [d.to_dict() for d in derived],
    }
    cert = write_certificate(out / "certificate.json", body, signing_key)
    if audit is not None:
        audit.append(
            {
                "type": "govern.erasure",
                "subject": pseudonym,
                "records_removed": len(removed_ids),
                "certificate_digest": file_digest(cert),
                "datasets": [c.new_digest for c in changes],
                "models": [a["model"] for a in actions],
            }
        )
    return ErasureResult(cert, body)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def sisa_from_table(
    directory: Path,
    frame: pd.DataFrame,
    learner: Any,
    *,
    signing_key: Ed25519PrivateKey,
    feature_columns: Sequence[str],
    input_shape: Sequence[int],
    label_column: str = "label",
    id_column: str = "record_id",
    subject_column: str | None = "subject",
    shards: int = 5,
    slices: int = 1,
    seed: int = 0,
) -> SisaEnsemble:
    """Train a SISA ensemble on a table, keyed like erasure is (so ``erase`` can unlearn from it), placing each
    subject's records in one shard when ``subject_column`` is given. Also records the work a full retrain costs."""
    from modelshield.govern.sisa import SisaEnsemble

    x = frame[list(feature_columns)].to_numpy(dtype=np.float32).reshape(len(frame), *input_shape)
    y = frame[label_column].to_numpy(dtype=np.int64)
    groups = [str(v) for v in frame[subject_column]] if subject_column else None
    ens, work = SisaEnsemble.train(
        directory,
        x,
        y,
        [str(v) for v in frame[id_column]],
        learner,
        key=pseudonym_key(signing_key),
        shards=shards,
        slices=slices,
        seed=seed,
        groups=groups,
    )
    ens.manifest.update(
        feature_columns=list(feature_columns),
        input_shape=list(input_shape),
        full_sample_epochs=work.sample_epochs,
    )
    ens.save_manifest()
    return ens

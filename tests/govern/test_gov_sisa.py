"""SISA training and unlearning on scikit-learn digits: the ensemble, the shards, the checkpoints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from modelshield.core.errors import InputError
from modelshield.govern.sisa import Placement, SisaEnsemble, SklearnLearner, TorchLearner

KEY = b"test-sisa-key"
ARCH = "modelshield.demo:DigitsCNN"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return xtr, ytr, xte, yte, [f"rec-{i:04d}" for i in range(len(xtr))]


def _digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.rglob("*")
            if p.is_file() and p.name != "sisa.json"}  # fmt: skip


def test_placement_is_keyed_stable_and_disjoint(digits: tuple) -> None:
    ids = digits[4]
    a, b = Placement.of(ids, KEY, 5, 3), Placement.of(list(reversed(ids)), KEY, 5, 3)
    assert np.array_equal(a.shard, b.shard[::-1]) and np.array_equal(a.slice, b.slice[::-1])
    counts = np.bincount(a.shard, minlength=5)
    assert counts.sum() == len(ids) and counts.min() > len(ids) / 5 * 0.8  # balanced, each record in one shard
    other = Placement.of(ids, b"another key", 5, 3)
    assert (other.shard != a.shard).mean() > 0.6  # another key, another placement


def test_sklearn_ensemble_is_close_to_one_model_and_unlearns_one_shard(digits: tuple, tmp_path: Path) -> None:
    xtr, ytr, xte, yte, ids = digits
    with threadpool_limits(1):
        single = LogisticRegression(max_iter=300).fit(xtr, ytr).score(xte, yte)
    ens, work = SisaEnsemble.train(
        tmp_path, xtr, ytr, ids, SklearnLearner(LogisticRegression(max_iter=300)), key=KEY, shards=5
    )
    for how in ("vote", "mean"):
        acc = float((ens.predict(xte, how) == yte).mean())
        assert acc > single - 0.05, (how, acc, single)
    assert work.sample_epochs == len(xtr) and work.shards == [0, 1, 2, 3, 4]

    before = _digests(tmp_path)
    removed = ids[:1]
    (shard,) = ens.locate(removed)
    keep = np.array([r not in removed for r in ids])
    w = ens.unlearn(xtr[keep], ytr[keep], [r for r in ids if r not in removed], removed, key=KEY)
    assert w.shards == [shard]
    assert w.sample_epochs == len(ens.shard_records(shard)) < len(xtr) / 3
    after = _digests(tmp_path)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {f"shard{shard:03d}/slice000.skops"}
    assert removed[0] not in ens.shard_records(shard)
    reopened = SisaEnsemble.open(tmp_path, SklearnLearner(LogisticRegression(max_iter=300)))
    assert np.array_equal(reopened.predict(xte), ens.predict(xte))


def test_torch_unlearning_restarts_from_the_checkpoint_before_the_record(digits: tuple, tmp_path: Path) -> None:
    xtr, ytr, _, _, ids = (v[:600] for v in digits)
    x = xtr.reshape(-1, 1, 8, 8)
    ens, full = SisaEnsemble.train(tmp_path, x, ytr, ids, TorchLearner(ARCH, epochs=1), key=KEY, shards=5, slices=3)
    manifest = json.loads((tmp_path / "sisa.json").read_text())
    # a record in the last slice of its shard: stages 0 and 1 are kept, only stage 2 retrains
    target = next(r for r in ids if ens.locate([r]) and next(iter(ens.locate([r]).values())) == 2)
    (shard,) = ens.locate([target])
    before = _digests(tmp_path)
    keep = np.array([r != target for r in ids])
    w = ens.unlearn(x[keep], ytr[keep], [r for r in ids if r != target], [target], key=KEY)
    assert w.shards == [shard]
    assert w.sample_epochs == len(ens.shard_records(shard))  # one stage: every remaining record of the shard, 1 epoch
    assert w.sample_epochs < full.sample_epochs / 5
    after = _digests(tmp_path)
    assert {k for k in after if after[k] != before[k]} == {f"shard{shard:03d}/slice002.safetensors"}
    # the retrained model's training record: every stage of the shard, without the removed record
    stages = ens.manifest["trained_on"][str(shard)]
    assert stages[:2] == manifest["trained_on"][str(shard)][:2] and target not in stages[2]
    assert set(stages[2]) == set(manifest["trained_on"][str(shard)][2]) - {target}


def test_subject_groups_place_a_subjects_records_in_one_shard(digits: tuple, tmp_path: Path) -> None:
    xtr, ytr, _, _, ids = digits
    groups = [f"subject-{i % 97}" for i in range(len(ids))]
    ens, _ = SisaEnsemble.train(
        tmp_path, xtr, ytr, ids, SklearnLearner(LogisticRegression(max_iter=200)), key=KEY, shards=5, groups=groups
    )
    removed = [r for r, g in zip(ids, groups, strict=True) if g == "subject-3"]
    assert len(removed) > 10 and len(ens.locate(removed)) == 1
    keep = np.array([r not in removed for r in ids])
    left_groups = [g for g, k in zip(groups, keep, strict=True) if k]
    with pytest.raises(InputError, match="places records by group"):
        ens.unlearn(xtr[keep], ytr[keep], [r for r in ids if r not in removed], removed, key=KEY)
    w = ens.unlearn(xtr[keep], ytr[keep], [r for r in ids if r not in removed], removed, key=KEY, groups=left_groups)
    assert len(w.shards) == 1


def test_unlearning_refuses_wrong_key_or_data_that_still_holds_the_record(digits: tuple, tmp_path: Path) -> None:
    xtr, ytr, _, _, ids = digits
    ens, _ = SisaEnsemble.train(tmp_path, xtr, ytr, ids, SklearnLearner(LogisticRegression(max_iter=100)), key=KEY)
    with pytest.raises(InputError, match="not the key"):
        ens.unlearn(xtr, ytr, ids, ids[:1], key=b"other")
    with pytest.raises(InputError, match="still in the data"):
        ens.unlearn(xtr, ytr, ids, ids[:1], key=KEY)
    (shard,) = ens.locate(ids[:1])
    other = next(i for i, r in enumerate(ids[1:], 1) if ens.locate([r]) == {shard: 0})
    keep = np.array([i not in (0, other) for i in range(len(ids))])
    with pytest.raises(InputError, match="differ from those it was trained on"):  # a second record silently dropped
        ens.unlearn(xtr[keep], ytr[keep], [r for r, k in zip(ids, keep, strict=True) if k], ids[:1], key=KEY)
    with pytest.raises(InputError, match="unique"):
        SisaEnsemble.train(
            tmp_path / "b", xtr[:3], ytr[:3], ["a", "a", "b"], SklearnLearner(LogisticRegression()), key=KEY
        )


@pytest.mark.slow
def test_torch_ensemble_accuracy_is_close_to_a_single_network(digits: tuple, tmp_path: Path) -> None:
    xtr, ytr, xte, yte, ids = digits
    x, xt = xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8)
    learner = TorchLearner(ARCH, epochs=15)
    single = learner.fit(learner.fresh(0), x, ytr, 0)
    single_acc = float((learner.proba(single, xt).argmax(1) == yte).mean())
    ens, _ = SisaEnsemble.train(tmp_path, x, ytr, ids, learner, key=KEY, shards=5, slices=1)
    assert float((ens.predict(xt, "mean") == yte).mean()) > single_acc - 0.06

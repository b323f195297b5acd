"""`modelshield harden --resume` and the data-access monitor: the resumed part numbers its epochs from the
checkpoint's, and OUT/data-access.json keeps the earlier part's epochs (or, when the earlier part never wrote one,
says which epochs it covers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelshield.monitor.training import DataAccessMonitor, merge_summaries

RunMain = Callable[..., tuple[int, str, str]]  # the root conftest's run_main fixture

HARDEN = ["harden", "--arch", "modelshield.demo:DigitsCNN", "--method", "standard", "--gating-eps", "0.1",
          "--batch-size", "64", "--eval-steps", "2", "--no-progress"]  # fmt: skip


def test_a_resumed_harden_run_continues_the_epoch_numbers_and_keeps_the_earlier_record(
    run_main: RunMain, tmp_path: Path, digits_files: list[str]
) -> None:
    out = tmp_path / "h"
    code, _, stderr = run_main(*HARDEN, *digits_files, "--epochs", "2", "--out", str(out))
    assert code == 0, stderr
    first = json.loads((out / "data-access.json").read_text())
    assert first["epochs_covered"] == [0, 1]
    code, stdout, stderr = run_main("harden", "--resume", str(out), "--epochs", "4", "--no-progress")
    assert code == 0, stderr
    assert "data access (shuffle): epochs 2..3" in stdout and "data access: no alarms" in stdout
    merged = json.loads((out / "data-access.json").read_text())
    assert merged["epochs_covered"] == [0, 1, 2, 3] and merged["parts"] == 2
    assert merged["epochs"][:2] == first["epochs"]  # the first part's record, as it was
    assert [e["coverage"] for e in merged["epochs"]] == [1.0] * 4 and merged["alarms"] == []


def test_without_the_earlier_summary_the_file_says_which_epochs_it_covers(
    run_main: RunMain, tmp_path: Path, digits_files: list[str]
) -> None:
    out = tmp_path / "h"
    code, _, stderr = run_main(*HARDEN, *digits_files, "--epochs", "1", "--out", str(out))
    assert code == 0, stderr
    (out / "data-access.json").unlink()  # as an interrupted first part leaves it: checkpoints, no summary
    code, _, stderr = run_main("harden", "--resume", str(out), "--epochs", "2", "--no-progress")
    assert code == 0, stderr
    summary = json.loads((out / "data-access.json").read_text())
    assert summary["epochs_covered"] == [1] and [e["epoch"] for e in summary["epochs"]] == [1]


def test_alarms_of_the_resumed_part_carry_the_run_epoch_and_replace_the_earlier_record_of_it() -> None:
    labels = np.arange(200) % 4
    earlier = DataAccessMonitor(None, 20)
    earlier.start(labels)
    rng = np.random.default_rng(0)
    for _ in range(3):  # epochs 0..2, honest
        for b in np.array_split(rng.permutation(200), 10):
            earlier.record_batch(b)
        earlier.end_epoch()
    resumed = DataAccessMonitor(None, 20)
    resumed.start(labels, epoch=2)  # the checkpoint was taken after epoch 1: epoch 2 runs again
    for b in np.array_split(np.arange(200), 10):  # in index order: not shuffled
        resumed.record_batch(b)
    (alarm,) = resumed.end_epoch()
    assert alarm.check == "shuffle" and alarm.epoch == 2
    assert earlier.alarms == []
    merged = merge_summaries(earlier.summary(), resumed.summary())
    assert merged["epochs_covered"] == [0, 1, 2] and [a["epoch"] for a in merged["alarms"]] == [2]
    other = DataAccessMonitor(None, 25)  # another run's settings: nothing of the earlier record is kept
    other.start(labels)
    assert merge_summaries(earlier.summary(), other.summary())["epochs_covered"] == []


def _epoch(monitor: DataAccessMonitor, rng: np.random.Generator) -> None:
    for b in np.array_split(rng.permutation(200), 10):
        monitor.record_batch(b)
    monitor.end_epoch()


def test_an_interrupted_part_leaves_the_epochs_it_finished_for_the_resumed_part(tmp_path: Path) -> None:
    """The CLI's monitor saves OUT/data-access.json after every epoch: a run killed in epoch 2 leaves epochs 0 and
    1, and the resumed part (from the epoch-1 checkpoint) merges into them once, however many epochs it saves."""
    from modelshield.cli._training_monitor import finish, make_monitor

    labels, rng = np.arange(200) % 4, np.random.default_rng(0)
    first = make_monitor(True, 20, "shuffle", 5.0, tmp_path)
    assert first is not None
    first.start(labels)
    with first.audit_files():
        _epoch(first, rng)
        _epoch(first, rng)
        first.record_batch(np.arange(20))  # epoch 2 under way when the process is killed: finish() never runs
    saved = json.loads((tmp_path / "data-access.json").read_text())
    assert saved["epochs_covered"] == [0, 1] and "parts" not in saved
    assert not [f for f in first.files if str(tmp_path) in f]  # saving the summary is not the loop reading data

    resumed = make_monitor(True, 20, "shuffle", 5.0, tmp_path, resumed=True)
    assert resumed is not None
    resumed.start(labels, epoch=2)
    for _ in range(3):  # epochs 2..4, each saved as it ends, then the summary once more at the end
        _epoch(resumed, rng)
    assert finish(resumed, None) == 0
    merged = json.loads((tmp_path / "data-access.json").read_text())
    assert merged["epochs_covered"] == [0, 1, 2, 3, 4] and merged["parts"] == 2
    assert merged["epochs"][:2] == saved["epochs"] and merged["files_opened"] == 0

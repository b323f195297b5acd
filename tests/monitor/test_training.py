"""The training-time data-access monitor on real PyTorch DataLoaders over scikit-learn's digits: quiet on a correct
shuffled loop, and an alarm for each way a sampler can be subverted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, SubsetRandomSampler, TensorDataset

from modelshield.core.errors import InputError
from modelshield.monitor.training import DataAccessMonitor


@pytest.fixture(scope="module")
def digits() -> tuple[TensorDataset, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return TensorDataset(torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)), y


def _train(monitor: DataAccessMonitor, loader: DataLoader, epochs: int = 3) -> None:  # type: ignore[type-arg]
    model = torch.nn.Linear(64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(epochs):
        for xb, yb in monitor.batches(loader):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()


def _checks(monitor: DataAccessMonitor) -> set[str]:
    return {a.check for a in monitor.alarms}


def test_correct_shuffled_training_is_quiet(digits: tuple[TensorDataset, np.ndarray]) -> None:
    ds, y = digits
    monitor = DataAccessMonitor(len(ds), 32, labels=y)
    torch.manual_seed(0)
    _train(monitor, DataLoader(ds, batch_size=32, sampler=monitor.sampler(RandomSampler(ds))))
    assert monitor.alarms == []
    assert len(monitor.epochs) == 3 and sorted(monitor.epochs[0].indices) == list(range(len(ds)))
    assert monitor.epochs[0].batch_sizes == [32] * 56 + [5]


def test_unshuffled_data_is_flagged(digits: tuple[TensorDataset, np.ndarray]) -> None:
    ds, y = digits
    monitor = DataAccessMonitor(len(ds), 32, labels=y)
    _train(monitor, DataLoader(ds, batch_size=32, sampler=monitor.sampler(SequentialSampler(ds))), epochs=2)
    assert {"shuffle", "reshuffle"} <= _checks(monitor)
    assert [a.epoch for a in monitor.alarms if a.check == "reshuffle"] == [1]  # needs a previous epoch


class _Replay:
    """A sampler that draws one random order and replays it every epoch."""

    def __init__(self, n: int) -> None:
        self.order = np.random.default_rng(0).permutation(n).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def test_replayed_order_and_skipped_samples(digits: tuple[TensorDataset, np.ndarray]) -> None:
    ds, y = digits
    monitor = DataAccessMonitor(len(ds), 32)
    _train(monitor, DataLoader(ds, batch_size=32, sampler=monitor.sampler(_Replay(len(ds)))), epochs=2)
    assert _checks(monitor) == {"reshuffle"}  # each epoch alone looks random

    monitor = DataAccessMonitor(len(ds), 32)
    keep = np.random.default_rng(1).permutation(len(ds))[: int(0.9 * len(ds))].tolist()  # 10 % never trained on
    _train(monitor, DataLoader(ds, batch_size=32, sampler=monitor.sampler(SubsetRandomSampler(keep))), epochs=1)
    coverage = next(a for a in monitor.alarms if a.check == "coverage")
    assert coverage.statistic == pytest.approx(0.9, abs=0.01)


def test_class_sorted_batches_and_a_batch_size_spike(digits: tuple[TensorDataset, np.ndarray]) -> None:
    """Batches composed by class (a data-ordering attack's shape), then one oversized batch slipped in."""
    ds, y = digits
    rng = np.random.default_rng(2)
    order = np.argsort(y + rng.random(len(y)) * 0.5, kind="stable")  # grouped by label, shuffled within
    batches = [order[i : i + 32].tolist() for i in range(0, len(order), 32)]
    rng.shuffle(batches)  # the batches themselves in random order
    monitor = DataAccessMonitor(len(ds), 32, labels=y)
    flat = [i for b in batches for i in b]
    _train(monitor, DataLoader(ds, batch_size=32, sampler=monitor.sampler(flat)), epochs=1)
    assert "batch-mix" in _checks(monitor)

    monitor = DataAccessMonitor(len(ds), 32)
    spiked = [list(range(i, min(i + 32, len(ds)))) for i in range(0, len(ds) - 288, 32)]
    spiked.append(list(range(len(ds) - 288, len(ds))))  # 288 samples in one step: 9× the step size
    loader = DataLoader(ds, batch_sampler=spiked)
    _train(monitor, loader, epochs=1)
    spike = next(a for a in monitor.alarms if a.check == "batch-size")
    assert spike.statistic == 288 and spike.threshold == 32


def test_files_outside_allowed_roots(tmp_path: Path) -> None:
    data, other = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir(), other.mkdir()
    (data / "shard0.bin").write_bytes(b"x")
    (other / "secrets.txt").write_text("k")
    monitor = DataAccessMonitor(10, 2, allowed_roots=[data])
    with monitor.audit_files():
        (data / "shard0.bin").read_bytes()
        (other / "secrets.txt").read_text()
    (other / "secrets.txt").read_text()  # after the block: not recorded
    assert str(data / "shard0.bin") in monitor.files and monitor.files[str(other / "secrets.txt")] == 1
    assert [a.check for a in monitor.alarms] == ["file"] and "secrets.txt" in monitor.alarms[0].message


class _FilePerSample(torch.utils.data.Dataset[torch.Tensor]):
    """An image-folder-like dataset: each sample read from its own file when the loader asks for it."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(list(self.files[i].read_bytes()), dtype=torch.float32)


def test_files_opened_in_dataloader_workers_are_recorded(tmp_path: Path) -> None:
    """DataLoader workers (forked) read the files; what they open reaches the parent's monitor and its alarms."""
    data, other = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir(), other.mkdir()
    files = [data / f"img{i:02d}.bin" for i in range(15)] + [other / "stolen.bin"]
    for f in files:
        f.write_bytes(bytes([1, 2, 3]))
    ds = _FilePerSample(files)
    monitor = DataAccessMonitor(len(ds), 4, allowed_roots=[data])
    loader = DataLoader(ds, batch_size=4, num_workers=2, sampler=monitor.sampler(SequentialSampler(ds)))
    with monitor.audit_files():
        for _ in monitor.batches(loader):
            pass
    assert {str(f) for f in files} <= set(monitor.files)
    assert [a.check for a in monitor.alarms] == ["file"] and "stolen.bin" in monitor.alarms[0].message
    (other / "stolen.bin").read_bytes()  # after the block: nothing recorded, and no worker is left writing
    assert monitor.files[str(other / "stolen.bin")] == 1


def test_bad_configuration() -> None:
    with pytest.raises(InputError):
        DataAccessMonitor(1, 32)
    with pytest.raises(InputError, match="labels"):
        DataAccessMonitor(10, 2, labels=[0, 1])

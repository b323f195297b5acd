"""Misbehaving models end in a one-line SandboxError and a dead process, never a hang."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from modelshield.supplychain.sandbox import (
    Limits,
    Sandbox,
    SandboxCrashError,
    SandboxError,
    SandboxLimitError,
    SandboxReplyError,
    SandboxTimeoutError,
    VendorCodeError,
)

X = torch.rand(4, 8)
Pids = Callable[[str], list[int]]


@pytest.fixture
def run(vendor: Path, sandbox_processes: Pids) -> Callable[..., SandboxError]:
    """Predict once with a misbehaving model; returns the error, checking no process outlives a fatal one."""

    def go(how: str, limits: Limits | None = None) -> SandboxError:
        return _run(vendor, sandbox_processes, how, limits)

    return go


def _run(vendor: Path, sandbox_processes: Pids, how: str, limits: Limits | None) -> SandboxError:
    with Sandbox(vendor=vendor, entry="acme.models:behaving", factory_kwargs={"how": how}, limits=limits) as box:
        marker = box.worker.marker
        with pytest.raises(SandboxError) as info:
            box.model.logits(X)
        if not isinstance(info.value, (VendorCodeError, SandboxReplyError)):
            assert sandbox_processes(marker) == [], "a fatal error must leave no sandbox process behind"
    assert sandbox_processes(marker) == []
    assert "\n" not in str(info.value)
    return info.value


def test_timeout_kills_the_model(run: Callable[..., SandboxError]) -> None:
    start = time.monotonic()
    err = run("sleep", Limits(timeout=1.0))
    assert isinstance(err, SandboxTimeoutError) and "within 1 s" in str(err) and "killed" in str(err)
    assert time.monotonic() - start < 15


def test_load_that_never_ends_times_out(vendor: Path) -> None:
    with pytest.raises(SandboxTimeoutError, match="did not start within 1 s"):
        Sandbox(vendor=vendor, entry="acme.models:slow_load", limits=Limits(startup_timeout=1.0)).start()


def test_memory_over_the_limit_stops_the_model(run: Callable[..., SandboxError]) -> None:
    err = run("hog", Limits(memory=1 << 30))
    assert isinstance(err, SandboxLimitError) and "memory limit of 1024 MiB" in str(err)


@pytest.mark.slow  # burns a CPU second on a shared machine; timeout and memory are tested by default
def test_cpu_limit_stops_a_spinning_model(run: Callable[..., SandboxError]) -> None:
    err = run("spin", Limits(cpu_seconds=1, timeout=20))
    assert isinstance(err, SandboxLimitError) and "CPU limit of 1 s" in str(err)


def test_crash_is_reported(run: Callable[..., SandboxError]) -> None:
    err = run("exit")
    assert isinstance(err, SandboxCrashError) and "code 7" in str(err)


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("nan", "NaN or Inf"),
        ("shape", r"shape \(4, 5\), expected \(4, 3\)"),
        ("strings", "dtype <U1"),
    ],
)
def test_garbage_predictions_are_refused(run: Callable[..., SandboxError], how: str, match: str) -> None:
    err = run(how)
    assert isinstance(err, SandboxReplyError) and re.search(match, str(err)), str(err)


def test_forged_frame_is_refused_without_reading_it(run: Callable[..., SandboxError]) -> None:
    err = run("forge")
    assert isinstance(err, SandboxCrashError) and "over the limit" in str(err)


def test_vendor_exception_is_reported_and_the_sandbox_stays_usable(vendor: Path) -> None:
    with Sandbox(vendor=vendor, entry="acme.models:behaving", factory_kwargs={"how": "flaky"}) as box:
        with pytest.raises(VendorCodeError, match="ValueError: vendor bug on single samples"):
            box.model.logits(X[:1])
        assert box.model.logits(X).shape == (4, 3)


def test_vendor_text_cannot_inject_terminal_escapes(run: Callable[..., SandboxError]) -> None:
    err = run("terminal")
    assert isinstance(err, VendorCodeError) and "fake prompt second line" in str(err)
    assert all(ch.isprintable() for ch in str(err))

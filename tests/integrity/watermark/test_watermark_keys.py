"""Keys: random, private on disk, never overwritten or shown; derived streams are reproducible and independent."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from modelshield.core.errors import InputError, KeyringError, MissingFileError
from modelshield.integrity.watermark import TriggerSetWatermark, WeightWatermark, generate_key, load_key
from modelshield.integrity.watermark.keys import key_integers, key_normal, key_stream

KEY = bytes(range(32))


def test_generated_key_is_private_random_and_never_overwritten(tmp_path: Path) -> None:
    a, b = generate_key(tmp_path / "a.key"), generate_key(tmp_path / "b.key")
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    assert len(load_key(a)) == 32 and load_key(a) != load_key(b)
    before = a.read_bytes()
    with pytest.raises(InputError, match="never overwritten"):
        generate_key(a)
    assert a.read_bytes() == before


def test_load_key_refuses_unsafe_or_bad_files(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "k.key")
    key.chmod(0o644)
    with pytest.raises(KeyringError, match="accessible to others"):
        load_key(key)
    short = tmp_path / "short.key"
    short.write_bytes(b"0123456789")
    short.chmod(0o600)
    with pytest.raises(KeyringError, match="16-4096 bytes"):
        load_key(short)
    with pytest.raises(MissingFileError):
        load_key(tmp_path / "missing.key")


def test_streams_depend_on_key_and_context_only() -> None:
    assert key_stream(KEY, "a", 64) == key_stream(KEY, "a", 64)
    assert key_stream(KEY, "a", 64) != key_stream(KEY, "b", 64)
    assert key_stream(KEY, "a", 64) != key_stream(bytes(32), "a", 64)
    assert key_stream(KEY, "a", 16) == key_stream(KEY, "a", 64)[:16]


def test_derived_values_have_the_stated_distributions() -> None:
    z = key_normal(KEY, "normal", 40_000)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1.0) < 0.02
    assert abs(float((z > 0).float().mean()) - 0.5) < 0.01
    labels = key_integers(KEY, "labels", 40_000, 10)
    counts = labels.bincount(minlength=10).double()
    assert int(labels.min()) == 0 and int(labels.max()) == 9
    assert float(((counts - 4000) ** 2 / 4000).sum()) < 27.88  # the 99.9% point of chi-square with 9 dof


def test_watermarks_never_show_their_key() -> None:
    for wm in (WeightWatermark(KEY), TriggerSetWatermark(KEY)):
        shown = repr(wm)
        assert KEY.hex() not in shown and repr(KEY) not in shown
    with pytest.raises(KeyringError):
        WeightWatermark(b"short")

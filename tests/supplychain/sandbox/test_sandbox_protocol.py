"""The pipe protocol parses only plain arrays and bounded frames, and never waits past a deadline."""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest

from modelshield.supplychain.sandbox import protocol


def test_round_trip_keeps_header_and_arrays() -> None:
    arrays = [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2], dtype=np.int64)]
    header, got = protocol.decode(protocol.encode({"op": "predict", "n": 3}, arrays)[12:])
    assert header == {"op": "predict", "n": 3}
    for a, b in zip(arrays, got, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_object_arrays_are_never_unpickled() -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    npy = buffer.getvalue()
    head = b'{"ok": true}'
    body = len(head).to_bytes(4, "big") + head + (1).to_bytes(4, "big") + len(npy).to_bytes(8, "big") + npy
    with pytest.raises(protocol.ProtocolError, match="not valid .npy"):
        protocol.decode(body)


@pytest.mark.parametrize(
    "body", [b"", b"\x00\x00\x00\x05[1,2]\x00\x00\x00\x00", b"\x00\x00\x00\x02{}\x00\x00\x00\x00!"]
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(body)


def test_oversized_frame_is_refused_before_it_is_read() -> None:
    r, w = os.pipe()
    try:
        os.write(w, protocol.encode({"ok": True}, [np.zeros(1000)]))
        with pytest.raises(protocol.ProtocolError, match="over the limit"):
            protocol.receive(r, max_bytes=100, deadline=time.monotonic() + 1)
    finally:
        os.close(r)
        os.close(w)


def test_a_silent_peer_costs_only_the_timeout() -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        os.write(w, protocol.encode({"ok": True})[:7])  # half a prefix, then nothing
        start = time.monotonic()
        with pytest.raises(protocol.PeerTimeout):
            protocol.receive(r, max_bytes=1 << 20, deadline=start + 0.3)
        assert time.monotonic() - start < 2
    finally:
        os.close(r)
        os.close(w)

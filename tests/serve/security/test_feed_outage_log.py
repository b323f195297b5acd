"""A Redis feed whose server is away says so once and retries quietly; when Redis answers it says so again."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from modelshield.serve.feed import RedisFeed


def test_an_unreachable_redis_is_logged_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    feed = RedisFeed(f"redis://127.0.0.1:{port}/0", "mstest:feed")
    with caplog.at_level(logging.WARNING, logger="modelshield.serve.feed"):
        feed.start(lambda _message: None)
        time.sleep(3.5)  # three retries at least
        feed.stop()
    lost = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 1 and not feed.listening

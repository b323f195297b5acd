"""OCSF events appended to a JSON-lines file (what ``modelshield siem validate`` and most shippers read)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelshield.monitor.siem.sinks.base import dumps


class FileSink:
    """Append events to ``path``, one JSON object per line; ``flush`` fsyncs, so flushed events survive a crash."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file = self.path.open("a", encoding="utf-8")
        self.sent = 0

    def send(self, event: dict[str, Any]) -> None:
        self._file.write(dumps(event) + "\n")
        self.sent += 1

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()

"""POST OCSF events to an HTTP collector in batches of JSON lines, through a bounded on-disk spool.

``send`` only commits the event to the spool (``sinks.spool``); one sender thread posts the oldest batch
(``Content-Type: application/x-ndjson``, one event per line) and deletes it from the spool when the collector
answers 2xx. Connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and full jitter
(capped at ``backoff_max``; ``Retry-After`` is honoured), for as long as it takes: a collector outage only
grows the spool, and a restarted process picks the spool up where the last one stopped, in order. Other 4xx
answers mean the collector will never take that batch; it goes to the spool's dead-letter table.

This is the shape of Splunk HEC, Elastic/OpenSearch ``_bulk``-style and Vector/Fluent Bit HTTP inputs: each
takes newline-delimited JSON; headers (``Authorization``) carry the token.
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from modelshield.core.errors import InputError
from modelshield.monitor.siem.sinks.base import SinkError, dumps
from modelshield.monitor.siem.sinks.spool import OnFull, Spool

log = logging.getLogger(__name__)
_RETRY_STATUS = {408, 429}


class HttpCollectorSink:
    """Deliver events to ``url`` (http or https) through the spool file ``spool``.

    ``batch_size`` events per POST, sent as soon as they are there (a batch does not wait to fill);
    ``headers`` go with every request (put the token here; it is never logged); ``ca_file`` verifies an https
    collector. The spool's bound and full policy: ``max_records``, ``max_bytes``, ``on_full``, ``block_seconds``;
    ``durability="fsync"`` makes each spooled event survive a power loss too (at the cost of an fsync each).
    """

    def __init__(
        self,
        url: str,
        spool: Path | str,
        *,
        batch_size: int = 500,
        headers: dict[str, str] | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        max_records: int = 1_000_000,
        max_bytes: int = 1 << 30,
        on_full: OnFull = "block",
        block_seconds: float = 30.0,
        durability: Literal["process", "fsync"] = "process",
        start: bool = True,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"collector URL {url!r} must be http:// or https:// with a host")
        if batch_size < 1:
            raise InputError("batch_size must be at least 1")
        self.url = url
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/x-ndjson", **(headers or {})}
        self._tls = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
        self._timeout = timeout
        self._backoff = (backoff_base, backoff_max)
        self.batch_size = batch_size
        self.spool = Spool(
            spool,
            max_records=max_records,
            max_bytes=max_bytes,
            on_full=on_full,
            block_seconds=block_seconds,
            durability=durability,
        )
        self._conn: http.client.HTTPConnection | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.delivered = 0
        self.retries = 0
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def start(self) -> None:
        """Start the sender thread (it replays whatever an earlier process left in the spool first)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="siem-http-sender", daemon=True)
            self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        self.spool.put(dumps(event))
        self._wake.set()

    def send_many(self, events: list[dict[str, Any]]) -> None:
        """Spool several events in one commit (bulk export: several times the rate of one ``send`` each)."""
        self.spool.put_many([dumps(e) for e in events])
        self._wake.set()

    def flush(self) -> None:
        """Every event sent is already committed to the spool; delivery goes on in the background (see ``drain``)."""
        self._wake.set()

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the collector to have every spooled event; True when it has."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while len(self.spool) and time.monotonic() < deadline:
            self.spool.wait_for_room_or_empty(min(0.1, max(0.0, deadline - time.monotonic())))
        return not len(self.spool)

    def close(self, timeout: float = 5.0) -> None:
        """Try to deliver for up to ``timeout`` seconds, then stop; what is left stays in the spool for next time."""
        if self._thread is not None:
            self.drain(timeout)
            self._stop.set()
            self._wake.set()
            self._thread.join()
        self._disconnect()
        self.spool.close()

    # -- sender thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            rows = self.spool.peek(self.batch_size)
            if not rows:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            status, retry_after = self._post("".join(body + "\n" for _, body in rows).encode("ascii"))
            if status is not None and 200 <= status < 300:
                self.spool.ack(rows)
                self.delivered += len(rows)
                attempt = 0
                continue
            if status is not None and 400 <= status < 500 and status not in _RETRY_STATUS:
                self.spool.bury(rows, status, self.last_error or "")
                continue
            attempt += 1
            self.retries += 1
            base, cap = self._backoff
            delay = retry_after if retry_after is not None else random.uniform(0, min(cap, base * 2**attempt))
            if attempt == 1 or attempt % 10 == 0:
                log.warning(
                    "SIEM collector %s unavailable (%s); retrying, %d spooled",
                    self._host,
                    self.last_error,
                    len(self.spool),
                )
            self._stop.wait(min(delay, cap))

    def _post(self, body: bytes) -> tuple[int | None, float | None]:
        """POST one batch: (HTTP status or None when the connection failed, Retry-After seconds)."""
        try:
            if self._conn is None:
                if self._tls is not None:
                    self._conn = http.client.HTTPSConnection(
                        self._host, self._port, timeout=self._timeout, context=self._tls
                    )
                else:
                    self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._conn.request("POST", self._path, body=body, headers=self._headers)
            response = self._conn.getresponse()
            text = response.read(2048).decode("utf-8", "replace")
            if response.will_close:
                self._disconnect()
        except (OSError, http.client.HTTPException) as exc:
            self._disconnect()
            self.last_error = f"{type(exc).__name__}: {exc}"
            return None, None
        if not 200 <= response.status < 300:
            self.last_error = f"HTTP {response.status}: {text[:200]}"
        retry_after = response.getheader("Retry-After")
        return response.status, float(retry_after) if retry_after and retry_after.isdigit() else None

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


__all__ = ["HttpCollectorSink", "SinkError"]

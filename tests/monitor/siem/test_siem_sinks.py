"""Sinks against real receivers: rsyslog on loopback over UDP, TCP (octet counting) and TLS; an HTTP collector
that goes down and comes back (nothing lost, order kept), a spool that outlives its process, and the full policies."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelshield.monitor.siem import (
    FileSink,
    HttpCollectorSink,
    Sink,
    Spool,
    SpoolFullError,
    SyslogSink,
    detection_finding,
    open_sink,
)
from modelshield.monitor.siem.sinks import SinkError

if TYPE_CHECKING:
    from conftest import Collector, Rsyslog


def finding(i: int, severity: str = "high") -> dict[str, Any]:
    return detection_finding(
        title=f'alert {i} with "quotes" ]brackets[ and \\',
        severity=severity,
        rule="r",
        time=1_765_000_000 + i,
        uid=f"a{i}",
    )


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_rsyslog_receives_rfc5424_with_structured_data(rsyslog: Rsyslog, transport: str) -> None:
    if transport == "tls" and not rsyslog.tls:
        pytest.skip("rsyslog's TLS driver is not installed (apt-get install rsyslog-gnutls)")
    rsyslog.reset(transport)
    sink = open_sink(f"syslog+{transport}://127.0.0.1:{rsyslog.ports[transport]}", ca_file=str(rsyslog.ca))
    assert isinstance(sink, SyslogSink) and isinstance(sink, Sink)
    sent = [finding(i, "critical" if i % 2 else "low") for i in range(50)]
    for event in sent:
        sink.send(event)
    sink.close()
    lines = rsyslog.lines(transport, 50)
    assert len(lines) == 50
    got = {}
    for line in lines:
        pri, app, msgid, sd, msg = line.split("|", 4)
        event = json.loads(msg)
        got[event["metadata"]["uid"]] = event
        # local0 (16) * 8 + syslog severity: critical → 2, low → 5
        assert int(pri) == 16 * 8 + (2 if event["severity_id"] == 5 else 5)
        assert (app, msgid) == ("modelshield", "ocsf-2004")
        assert sd.startswith('[ocsf@32473 class_uid="2004" type_uid="200401"') and event["metadata"]["uid"] in sd
    assert got == {e["metadata"]["uid"]: e for e in sent}  # every event, intact (escaping included)


def test_tls_refuses_a_receiver_the_ca_did_not_sign(rsyslog: Rsyslog) -> None:
    if not rsyslog.tls:
        pytest.skip("rsyslog's TLS driver is not installed (apt-get install rsyslog-gnutls)")
    sink = SyslogSink("127.0.0.1", rsyslog.ports["tls"], "tls")  # system CAs: the test CA is not among them
    with pytest.raises(SinkError, match="CERTIFICATE_VERIFY_FAILED"):
        sink.send(finding(0))


def test_file_sink_appends_json_lines(tmp_path: Path) -> None:
    sink = open_sink(str(tmp_path / "out.jsonl"))
    assert isinstance(sink, FileSink)
    for i in range(3):
        sink.send(finding(i))
    sink.close()
    assert [json.loads(x)["finding_info"]["uid"] for x in (tmp_path / "out.jsonl").read_text().splitlines()] == [
        "a0",
        "a1",
        "a2",
    ]


def uids(events: list[dict[str, Any]]) -> list[str]:
    """Event ids in arrival order, first arrivals only (delivery is at least once)."""
    seen: dict[str, None] = {}
    for e in events:
        seen.setdefault(e["metadata"]["uid"], None)
    return list(seen)


def test_collector_outage_loses_nothing_and_keeps_order(collector: Collector, tmp_path: Path) -> None:
    sink = HttpCollectorSink(collector.url, tmp_path / "spool.db", batch_size=100, backoff_max=0.5)
    sent: list[str] = []

    def produce(start: int, n: int) -> None:
        for i in range(start, start + n):
            event = finding(i)
            sink.send(event)
            sent.append(event["metadata"]["uid"])
            time.sleep(0.0005)

    produce(0, 300)
    collector.down()
    produce(300, 600)  # while the collector is away: everything goes to the spool
    time.sleep(0.5)
    assert len(sink.spool) > 0 and sink.retries > 0
    collector.up()
    produce(900, 300)
    assert sink.drain(20)
    sink.close()
    assert uids(collector.received) == sent


def test_spool_survives_a_restart_and_replays_in_order(collector: Collector, tmp_path: Path) -> None:
    collector.down()
    first = HttpCollectorSink(collector.url, tmp_path / "spool.db", backoff_max=0.2)
    for i in range(300):
        first.send(finding(i))
    first.close(timeout=0.2)  # the process ends with the collector still away
    assert Spool(tmp_path / "spool.db").status().pending == 300
    collector.up()
    second = HttpCollectorSink(collector.url, tmp_path / "spool.db")
    second.send(finding(300))
    assert second.drain(10)
    second.close()
    assert uids(collector.received) == [f"a{i}:create:{(1_765_000_000 + i) * 1000}" for i in range(301)]


def test_refused_batches_become_dead_letters(collector: Collector, tmp_path: Path) -> None:
    collector.status = 400
    sink = HttpCollectorSink(collector.url, tmp_path / "spool.db")
    for i in range(5):
        sink.send(finding(i))
    assert sink.drain(5)  # nothing stays queued behind a batch the collector will never take
    status = sink.spool.status()
    sink.close()
    assert (status.pending, status.dead) == (0, 5) and collector.received == []


def test_full_spool_blocks_then_refuses_or_drops_the_oldest_counted(tmp_path: Path) -> None:
    blocking = Spool(tmp_path / "block.db", max_records=3, block_seconds=0.2)
    for i in range(3):
        blocking.put(str(i))
    with pytest.raises(SpoolFullError):
        blocking.put("3")
    threading.Timer(0.1, lambda: blocking.ack(blocking.peek(1))).start()
    blocking.block_seconds = 5
    blocking.put("3")  # room made by a delivery while waiting: taken, nothing lost
    assert [b for _, b in blocking.peek(10)] == ["1", "2", "3"]
    blocking.close()
    dropping = Spool(tmp_path / "drop.db", max_records=10, on_full="drop-oldest")
    for i in range(15):
        dropping.put(str(i))
    assert [b for _, b in dropping.peek(100)] == [str(i) for i in range(5, 15)]
    dropping.close()
    assert Spool(tmp_path / "drop.db").status().dropped == 5  # counted, and the count outlives the process


@pytest.mark.slow
def test_thirty_second_outage_at_the_gateway_rate_loses_nothing(collector: Collector, tmp_path: Path) -> None:
    """The issue's measure: the collector down 30 s while 2,000 events/s keep coming (the gateway's bench rate)."""
    sink = HttpCollectorSink(collector.url, tmp_path / "spool.db")
    sent: list[str] = []
    start = time.perf_counter()
    for phase_end, up in ((2.0, True), (32.0, False), (34.0, True)):
        if up and not collector.is_up:
            collector.up()
        elif not up:
            collector.down()
        while (now := time.perf_counter() - start) < phase_end:
            event = finding(len(sent))
            sink.send(event)
            sent.append(event["metadata"]["uid"])
            delay = len(sent) / 2000 - now
            if delay > 0:
                time.sleep(delay)
    assert sink.drain(120)
    sink.close()
    assert len(sent) > 30_000 and uids(collector.received) == sent

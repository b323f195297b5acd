"""Each channel against a real server on loopback: http.server for the webhook, aiosmtpd for email, UDP and TCP
sockets for syslog (through modelshield.monitor.siem's sink, as OCSF Detection Findings)."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelshield.monitor.alerts.channels import (
    SIGNATURE_HEADER,
    DeliveryError,
    EmailChannel,
    SiemChannel,
    WebhookChannel,
    build_channels,
    close_channels,
    verify_signature,
)
from modelshield.monitor.alerts.engine import Alert, Notice
from modelshield.monitor.alerts.events import alert_event
from modelshield.monitor.alerts.loopback import SmtpReceiver, SyslogReceiver, WebhookReceiver
from modelshield.monitor.alerts.rules import CollectorRoute, EmailRoute, SyslogRoute, WebhookRoute
from modelshield.monitor.siem import SinkError, check_event

SECRET = "s3cr3t-webhook-key-do-not-log"


@pytest.fixture
def payload() -> dict[str, object]:
    alert = Alert("0123456789abcdef", "poisoning", "threshold", "critical", "poisoning|stream=class:0",
                  {"stream": "class:0"}, "share of class:0 rising", 1.7e9, 1.7e9, 16.2)  # fmt: skip
    return alert_event(Notice("fired", alert, ["hook"], 1.7e9))


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def test_webhook_posts_signed_json(
    webhook: WebhookReceiver, payload: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MS_TEST_HOOK_SECRET", SECRET)
    WebhookChannel(WebhookRoute(type="webhook", url=webhook.url, secret_env="MS_TEST_HOOK_SECRET")).send(payload)
    (got,) = webhook.wait(1)
    assert json.loads(got["body"]) == payload
    header = got["headers"][SIGNATURE_HEADER]
    assert verify_signature(SECRET.encode(), got["body"].encode(), header)
    assert not verify_signature(b"another key", got["body"].encode(), header)
    assert not verify_signature(SECRET.encode(), got["body"].replace("16.2", "1").encode(), header)
    assert not verify_signature(SECRET.encode(), got["body"].encode(), header, now=1e10)  # a replay, much later
    assert SECRET not in json.dumps(got)


def test_webhook_retries_5xx_with_backoff_but_not_4xx(payload: dict[str, object]) -> None:
    waits: list[float] = []
    flaky = WebhookReceiver(statuses=(503, 502, 200))
    try:
        route = WebhookRoute(type="webhook", url=flaky.url, retries=3, backoff_s=0.5)
        WebhookChannel(route, sleep=waits.append).send(payload)
        assert [g["status"] for g in flaky.wait(3)] == [503, 502, 200]
        assert waits == [0.5, 1.0]
    finally:
        flaky.close()
    refusing = WebhookReceiver(statuses=(400,))
    try:
        with pytest.raises(DeliveryError, match=r"HTTP 400 after 1 attempt"):
            WebhookChannel(WebhookRoute(type="webhook", url=refusing.url), sleep=waits.append).send(payload)
    finally:
        refusing.close()


def test_webhook_failure_names_the_host_not_the_secret(
    payload: dict[str, object], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MS_TEST_HOOK_SECRET", SECRET)
    route = WebhookRoute(type="webhook", url="http://127.0.0.1:9/hook?token=abc", secret_env="MS_TEST_HOOK_SECRET",
                         retries=1, backoff_s=0, timeout_s=2)  # fmt: skip
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as info:
        WebhookChannel(route).send(payload)
    assert "http://127.0.0.1:9:" in str(info.value) and "after 2 attempt(s)" in str(info.value)
    assert "token" not in str(info.value) and SECRET not in str(info.value) and SECRET not in caplog.text
    monkeypatch.delenv("MS_TEST_HOOK_SECRET")
    with pytest.raises(DeliveryError, match="MS_TEST_HOOK_SECRET is not set"):
        WebhookChannel(route).send(payload)


def test_email_reaches_a_real_smtp_server(payload: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    smtp = SmtpReceiver()
    try:
        route = EmailRoute(type="email", host="127.0.0.1", port=smtp.port, sender="ms@example.org",
                           to=["secops@example.org", "oncall@example.org"])  # fmt: skip
        EmailChannel(route).send(payload)
        multiline = json.loads(json.dumps(payload))
        multiline["alert"]["summary"] = "opened /etc/shadow,\r\nBcc: everyone@example.org"  # a label with a newline
        EmailChannel(route).send(multiline)
        got, second = smtp.wait(2)
    finally:
        smtp.close()
    assert got["from"] == "ms@example.org" and got["to"] == ["secops@example.org", "oncall@example.org"]
    assert got["subject"].startswith("[modelshield critical] alert.fired: poisoning")
    assert got["headers"]["X-Modelshield-Alert-Id"] == "0123456789abcdef"
    assert json.loads(got["body"].split("\n\n", 1)[1]) == payload
    assert (
        second["subject"].endswith("opened /etc/shadow, Bcc: everyone@example.org") and "Bcc" not in second["headers"]
    )
    # a login whose password variable is missing fails before any connection, naming the variable only
    monkeypatch.delenv("MS_TEST_SMTP_PASSWORD", raising=False)
    login = route.model_copy(update={"username": "ms", "password_env": "MS_TEST_SMTP_PASSWORD"})
    with pytest.raises(DeliveryError, match="MS_TEST_SMTP_PASSWORD is not set"):
        EmailChannel(login).send(payload)


def test_email_to_a_closed_port_is_a_delivery_error(payload: dict[str, object]) -> None:
    route = EmailRoute(type="email", host="127.0.0.1", port=9, sender="a@b", to=["c@d"], timeout_s=2)
    with pytest.raises(DeliveryError, match=r"email via 127.0.0.1:9: ConnectionRefusedError"):
        EmailChannel(route).send(payload)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_syslog_carries_a_valid_ocsf_detection_finding(protocol: str, payload: dict[str, Any]) -> None:
    collector = SyslogReceiver(protocol)
    try:
        route = SyslogRoute(type="syslog", host="127.0.0.1", port=collector.port, protocol=protocol)
        channel = build_channels({"siem": route})["siem"]
        channel.send(payload)
        channel.send(payload)
        got = collector.wait(2)
    finally:
        collector.close()
    assert len(got) == 2
    assert got[0]["pri"] == 16 * 8 + 2  # local0, critical
    assert got[0]["msgid"] == "ocsf-2004" and 'class_uid="2004"' in got[0]["structured_data"]
    finding = got[0]["event"]
    check_event(finding)  # the OCSF validator of modelshield.monitor.siem, against the vendored schema
    assert finding["class_name"] == "Detection Finding" and finding["severity"] == "Critical"
    assert finding["finding_info"]["uid"] == "0123456789abcdef" and finding["activity_name"] == "Create"
    assert finding["evidences"][0]["data"]["action"] == "alert.fired"


def test_a_failing_sink_is_a_delivery_error(payload: dict[str, Any]) -> None:
    class Down:
        def send(self, event: dict[str, Any]) -> None:
            raise SinkError("collector unreachable")

    with pytest.raises(DeliveryError, match="SIEM: collector unreachable"):
        SiemChannel(Down()).send(payload)


def test_collector_route_spools_then_posts_findings(
    payload: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MS_TEST_HEC_TOKEN", "hec-token-123")
    collector = WebhookReceiver(statuses=(503, 200))  # down once: the spool keeps the finding and retries
    route = CollectorRoute(type="collector", url=collector.url, token_env="MS_TEST_HEC_TOKEN", auth_scheme="Splunk",
                           spool=str(tmp_path / "spool.db"))  # fmt: skip
    channels = build_channels({"siem": route})
    try:
        channels["siem"].send(payload)
        got = collector.wait(2, timeout=10)
    finally:
        close_channels(channels)
        collector.close()
    assert [g["status"] for g in got] == [503, 200]
    assert got[1]["headers"]["Authorization"] == "Splunk hec-token-123"
    (line,) = got[1]["body"].splitlines()
    finding = json.loads(line)
    check_event(finding)
    assert finding["finding_info"]["uid"] == "0123456789abcdef"


def _tls_server_context(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A private CA and a certificate for 127.0.0.1 signed by it: the server's context and the CA file."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test relay CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context, folder / "ca.pem"


def test_email_starttls_and_login_with_a_password_from_the_environment(
    payload: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    context, ca = _tls_server_context(tmp_path)
    smtp = SmtpReceiver(tls_context=context, logins={"ms": "relay-pass-42"})
    try:
        route = EmailRoute(type="email", host="127.0.0.1", port=smtp.port, starttls=True, ca_file=str(ca),
                           username="ms", password_env="MS_TEST_SMTP_PASSWORD", sender="ms@x.org", to=["s@x.org"])  # fmt: skip
        monkeypatch.setenv("MS_TEST_SMTP_PASSWORD", "relay-pass-42")
        with caplog.at_level(logging.DEBUG):
            EmailChannel(route).send(payload)
        assert smtp.wait(1)[0]["subject"].startswith("[modelshield critical] alert.fired")
        monkeypatch.setenv("MS_TEST_SMTP_PASSWORD", "wrong-pass-99")
        # refused (aiosmtpd answers 535 to PLAIN, then stalls smtplib's retry with LOGIN: hence a short timeout)
        with pytest.raises(DeliveryError, match=r"email via 127\.0\.0\.1") as info:
            EmailChannel(route.model_copy(update={"timeout_s": 1.0})).send(payload)
        assert "wrong-pass-99" not in str(info.value) and "relay-pass-42" not in caplog.text
        # without the private CA the relay's certificate is refused: no password goes to an unverified server
        monkeypatch.setenv("MS_TEST_SMTP_PASSWORD", "relay-pass-42")
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            EmailChannel(route.model_copy(update={"ca_file": None})).send(payload)
    finally:
        smtp.close()
    assert len(smtp.items) == 1

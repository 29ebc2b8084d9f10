"""Email notifications reach a real SMTP server (aiosmtpd) over STARTTLS with a certificate made
here, and the test reads the message back: subject, plain-text and HTML parts."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dragon.domain.notifications import ChannelFailed, DecisionBrief, IncidentBrief, Notice
from dragon.integrations.mail import EmailChannel, SmtpServer
from tests.support.ports import free_port


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    tls_used: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        self.tls_used.append(session.ssl is not None)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


@dataclass
class SmtpPeer:
    port: int
    cert: Path
    mailbox: Mailbox


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[SmtpPeer]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,  # MAIL before STARTTLS is refused: plain text cannot pass
    )
    await asyncio.to_thread(controller.start)
    try:
        yield SmtpPeer(port=port, cert=cert, mailbox=mailbox)
    finally:
        await asyncio.to_thread(controller.stop)


NOTICE = Notice(
    event="decision.pending_approval",
    notification_id="ntf_01a2027bd68073374ed71612f5b1",
    occurred_at="2026-11-22T09:00:00+00:00",
    incident=IncidentBrief(
        id="inc_1",
        title="checkout 500s <after> deploy",
        severity="SEV1",
        status="open",
        source="alertmanager",
        repo="acme/shop",
        branch="main",
    ),
    decision=DecisionBrief(
        id="dec_1",
        title="roll back checkout",
        action="rollback_deployment",
        status="pending_approval",
        risk_score=70,
        risk_level="high",
        risk_factors=[{"name": "production", "weight": 30, "detail": "targets production"}],
    ),
)


def channel(peer: SmtpPeer, *, ca_file: Path | None) -> EmailChannel:
    return EmailChannel(
        "oncall-mail",
        server=SmtpServer(
            host="127.0.0.1",
            port=peer.port,
            starttls=True,
            ca_file=str(ca_file) if ca_file else None,
            timeout=5,
        ),
        sender="dragon@example.com",
        to=["oncall@example.com", "sre@example.com"],
    )


async def test_the_email_arrives_over_starttls_with_plain_text_and_html_parts(
    smtp: SmtpPeer,
) -> None:
    await channel(smtp, ca_file=smtp.cert).send(NOTICE, thread=None)
    [mail] = smtp.mailbox.messages
    [envelope] = smtp.mailbox.envelopes
    assert smtp.mailbox.tls_used == [True]
    assert envelope.mail_from == "dragon@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "sre@example.com"]
    assert mail["Subject"] == "[SEV1] Decision awaits approval: checkout 500s <after> deploy"
    assert mail["X-Dragon-Notification"] == NOTICE.notification_id
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    text = plain.get_content()
    assert "Risk: high (70/100)" in text
    assert "Repository: acme/shop @ main" in text
    markup = html.get_content()
    assert "<h2>[SEV1] Decision awaits approval: checkout 500s &lt;after&gt; deploy</h2>" in markup
    assert "production: targets production" in markup


async def test_an_untrusted_certificate_is_refused_and_left_for_a_retry(smtp: SmtpPeer) -> None:
    with pytest.raises(ChannelFailed) as failed:
        await channel(smtp, ca_file=None).send(NOTICE, thread=None)
    assert failed.value.retryable
    assert smtp.mailbox.messages == []


async def test_a_server_that_is_down_is_retryable(tmp_path: Path) -> None:
    down = SmtpPeer(port=free_port(), cert=tmp_path / "none", mailbox=Mailbox())
    with pytest.raises(ChannelFailed) as failed:
        await channel(down, ca_file=None).send(NOTICE, thread=None)
    assert failed.value.retryable
    assert failed.value.code == "notification_channel_unavailable"

"""Email over SMTP with STARTTLS (aiosmtplib): one message with a plain-text and an HTML part."""

from __future__ import annotations

import html
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from dragon.domain.notifications import ChannelFailed, Notice


@dataclass(frozen=True, kw_only=True)
class SmtpServer:
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    ca_file: str | None = None  # trust this CA bundle instead of the system's
    timeout: float = 15.0


def _lines(notice: Notice) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if notice.incident:
        inc = notice.incident
        rows += [("Incident", inc.title), ("Severity", inc.severity), ("Status", inc.status)]
        rows += [("Source", inc.source)]
        if inc.repo:
            rows.append(("Repository", inc.repo + (f" @ {inc.branch}" if inc.branch else "")))
        if inc.url:
            rows.append(("Link", inc.url))
    if notice.decision:
        dec = notice.decision
        rows += [("Decision", f"{dec.title} ({dec.action})"), ("Decision status", dec.status)]
        rows.append(("Risk", f"{dec.risk_level} ({dec.risk_score}/100)"))
        for factor in dec.risk_factors:
            rows.append(("Risk factor", f"{factor.get('name')}: {factor.get('detail', '')}"))
    for key, value in notice.details.items():
        rows.append((key.replace("_", " ").capitalize(), str(value)))
    return rows


def message(notice: Notice, *, sender: str, to: list[str]) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = notice.headline[:200]
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["X-Dragon-Notification"] = notice.notification_id
    rows = _lines(notice)
    mail.set_content(notice.headline + "\n\n" + "\n".join(f"{k}: {v}" for k, v in rows) + "\n")
    cells = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    mail.add_alternative(
        f"<html><body><h2>{html.escape(notice.headline)}</h2><table>{cells}</table></body></html>",
        subtype="html",
    )
    return mail


class EmailChannel:
    kind = "email"

    def __init__(self, name: str, *, server: SmtpServer, sender: str, to: list[str]) -> None:
        self.name = name
        self._server = server
        self._sender = sender
        self._to = to
        self._tls = ssl.create_default_context(cafile=server.ca_file)

    def target(self) -> str:
        return f"email to {', '.join(self._to)} via {self._server.host}:{self._server.port}"

    def handles(self, event: str) -> bool:
        return True

    async def send(self, notice: Notice, *, thread: str | None) -> str | None:
        server = self._server
        try:
            await aiosmtplib.send(
                message(notice, sender=self._sender, to=self._to),
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                start_tls=server.starttls,
                tls_context=self._tls if server.starttls else None,
                timeout=server.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # 4yz replies are transient by definition (RFC 5321 4.2.1); 5yz are permanent.
            raise ChannelFailed(
                f"the SMTP server answered {exc.code}",
                retryable=400 <= exc.code < 500,
                code="notification_channel_unavailable"
                if 400 <= exc.code < 500
                else "notification_channel_refused",
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ChannelFailed(
                f"the SMTP server could not be reached ({type(exc).__name__})",
                retryable=True,
                code="notification_channel_unavailable",
            ) from None
        return None

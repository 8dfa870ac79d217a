"""E-mail through SMTP (aiosmtplib): the local sink on 127.0.0.1:8025 by default, the centre's
mail relay in production.

Headers are built with the standard library's ``email.policy.SMTP``, so a Chinese subject or
display name goes out RFC 2047-encoded and the body as UTF-8; ``Message-ID`` is derived from
our ledger id, so a message the relay saw twice can be recognised downstream.
No address is logged, only the ledger id.
"""

from __future__ import annotations

import logging
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime
from typing import Any

import aiosmtplib

from notifications.adapters.gateways import OutboundMessage, SendResult, TimeoutUnknown

log = logging.getLogger(__name__)


def build_email(message: OutboundMessage, sender: str, *, sender_name: str | None = None,
                domain: str = "notifications.crm.local") -> EmailMessage:
    """The MIME message for one notification. ValueError when the address cannot be one."""
    local, at, host = message.to.strip().rpartition("@")
    if not at or not local or "." not in host:
        raise ValueError("to: not an e-mail address")
    mail = EmailMessage()
    mail["From"] = Address(display_name=sender_name or "", addr_spec=sender)
    mail["To"] = Address(display_name=message.recipient_name or "", username=local, domain=host)
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(localtime())
    mail["Message-ID"] = f"<{message.message_id}@{domain}>"
    mail["Content-Language"] = message.language
    mail["X-Notification-Id"] = message.message_id
    # base64, not 8bit: a relay without 8BITMIME still carries Chinese text intact.
    mail.set_content(message.body, charset="utf-8", cte="base64")
    return mail


class SmtpGateway:
    """The e-mail channel; ``host`` may be the service's settings (smtp_host, smtp_port,
    smtp_sender), as the channel factory passes them."""

    def __init__(self, host: str | Any = "127.0.0.1", port: int = 8025, sender: str = "noreply@crm.local", *,
                 sender_name: str | None = None, timeout_s: float = 10.0, start_tls: bool | None = False,
                 username: str | None = None, password: str | None = None):
        if not isinstance(host, str):
            host, port, sender = host.smtp_host, int(host.smtp_port), host.smtp_sender
        self.host, self.port, self.sender, self.sender_name = host, port, sender, sender_name
        self.timeout_s, self.start_tls = timeout_s, start_tls
        self.username, self.password = username, password

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            mail = build_email(message, self.sender, sender_name=self.sender_name)
        except ValueError as exc:
            return SendResult(accepted=False, permanent=True, error=str(exc))
        try:
            await aiosmtplib.send(
                mail, hostname=self.host, port=self.port, timeout=self.timeout_s, start_tls=self.start_tls,
                username=self.username, password=self.password)
        except aiosmtplib.SMTPConnectError as exc:  # connect timeouts too: nothing was sent
            return SendResult(accepted=False, error=f"connect: {type(exc).__name__}")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            return SendResult(accepted=False, permanent=all(500 <= c < 600 for c in codes),
                              error=f"recipient refused: {codes}")
        except aiosmtplib.SMTPResponseException as exc:
            return SendResult(accepted=False, permanent=500 <= exc.code < 600, error=f"SMTP {exc.code}")
        except (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected) as exc:
            # The server may have queued it before going quiet: never send it twice.
            log.warning("mail server did not answer in time", extra={"message_id": message.message_id})
            raise TimeoutUnknown(message.message_id) from exc
        except aiosmtplib.SMTPException as exc:
            return SendResult(accepted=False, error=f"SMTP: {type(exc).__name__}")
        log.info("mail accepted by the server", extra={"message_id": message.message_id})
        return SendResult(accepted=True, provider_ref=str(mail["Message-ID"]))

    async def close(self) -> None:
        """A connection per message: nothing is held open between them."""

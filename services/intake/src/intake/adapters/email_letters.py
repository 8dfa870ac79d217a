"""E-mailed letters arrive by themselves: an SMTP listener (aiosmtpd) turns each message
into a letter contact, attachments included, so nobody types an e-mail in again.

The mail server of the customer centre forwards the letters mailbox to this listener
(e.g. a Postfix transport or an alias). The recipient address names the region:
`shenzhen@letters.example.cn`, or an explicit mailbox → region map.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from opentelemetry import trace

from intake.adapters.attachments import sniff_content_type

log = logging.getLogger(__name__)


class ParsedLetter:
    def __init__(self, message: EmailMessage, recipients: list[str]):
        self.message = message
        self.recipients = recipients
        self.sender_name, self.sender_email = parseaddr(str(message.get("From", "")))
        self.subject = str(message.get("Subject", "")).strip() or "(no subject)"
        self.message_id = str(message.get("Message-ID", "")).strip("<> ") or None
        date = message.get("Date")
        self.sent_at = parsedate_to_datetime(str(date)) if date else None
        body = message.get_body(preferencelist=("plain", "html"))
        self.body = body.get_content().strip() if body is not None else ""
        self.files: list[tuple[str, str, bytes]] = []
        for part in message.iter_attachments():
            data = part.get_payload(decode=True) or b""
            content_type = sniff_content_type(data[:16])
            if content_type:  # anything else (executables, archives) is not a letter's scan
                self.files.append((part.get_filename() or "attachment", content_type, data))


def parse_letter(raw: bytes, recipients: list[str]) -> ParsedLetter:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return ParsedLetter(message, recipients)


def region_for(recipients: list[str], mailboxes: dict[str, str]) -> str | None:
    for address in recipients:
        address = address.lower()
        if address in mailboxes:
            return mailboxes[address]
    return recipients[0].split("@", 1)[0].lower() if recipients else None


class LetterRefused(Exception):
    """A letter that can never be recorded (no region it belongs to): bounce it to the sender."""


LetterSink = Callable[[ParsedLetter], Awaitable[None]]


class _Handler:
    def __init__(self, sink: LetterSink, max_bytes: int, loop: asyncio.AbstractEventLoop):
        self.sink = sink
        self.max_bytes = max_bytes
        self.loop = loop  # the service's loop: the database client lives there

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if len(raw) > self.max_bytes:
            return "552 Message too large"
        try:
            letter = parse_letter(raw, [str(r) for r in envelope.rcpt_tos])
            # aiosmtpd serves from its own thread and loop; record the letter on ours.
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._record(letter), self.loop))
        except LetterRefused as exc:
            return f"550 {exc}"
        except Exception:
            log.exception("could not record an e-mailed letter")
            # A temporary failure: the sending server keeps the message and retries.
            return "451 Could not record the letter, try again later"
        return "250 Letter recorded"

    async def _record(self, letter: ParsedLetter) -> None:
        # A letter's own trace, as a request or a consumed message has: its log lines and
        # its ContactReceived (the outbox keeps the traceparent) share the trace id.
        with trace.get_tracer(__name__).start_as_current_span("smtp letter", kind=trace.SpanKind.SERVER):
            await self.sink(letter)


async def start_smtp_listener(sink: LetterSink, *, host: str, port: int, max_bytes: int) -> Any:
    handler = _Handler(sink, max_bytes, asyncio.get_running_loop())
    controller = Controller(handler, hostname=host, port=port,
                            data_size_limit=max_bytes)
    controller.start()
    return controller

"""E-mailed letters arrive by themselves: an SMTP listener (aiosmtpd) turns each message
into a letter contact, attachments included, so nobody types an e-mail in again.

The mail server of the customer centre forwards the letters mailbox to this listener
(e.g. a Postfix transport or an alias). A letter is answered 250 only once it is stored
with its event; a failure on our side is 451, so the sending server keeps it and retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from opentelemetry import trace

from intake import handlers
from intake.adapters.email_letters import ParsedLetter, parse_letter, region_for
from intake.deps import IntakeDeps

log = logging.getLogger(__name__)


class LetterRefused(Exception):
    """A letter that can never be recorded (no region it belongs to): bounce it to the sender."""


async def record_emailed_letter(deps: IntakeDeps, letter: ParsedLetter) -> None:
    region = region_for(letter.recipients, deps.settings.smtp_mailboxes)
    attachments = [
        (await deps.attachments.put(name, ctype, data, contact_id=letter.message_id or "")).as_dict()
        for name, ctype, data in letter.files
    ]
    cmd = handlers.ReceiveContact(
        channel="letter", letter_form="email", region=region if region and deps.known_region(region) else None,
        subject=letter.subject, body=letter.body, name=letter.sender_name or None,
        email=letter.sender_email or None, source_ref=letter.message_id, received_at=letter.sent_at,
        attachments=attachments)
    try:
        await handlers.receive_contact(deps, cmd)
    except handlers.UnknownRegion as exc:
        raise LetterRefused("No customer centre region for this mailbox") from exc


LetterSink = Callable[[ParsedLetter], Awaitable[None]]


class _Handler:
    def __init__(self, sink: LetterSink, max_bytes: int, loop: asyncio.AbstractEventLoop,
                 refused: Callable[[str], None]):
        self.sink = sink
        self.max_bytes = max_bytes
        self.loop = loop  # the service's loop: the database client lives there
        self.refused = refused

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if len(raw) > self.max_bytes:
            self.refused("too_large")
            return "552 Message too large"
        try:
            letter = parse_letter(raw, [str(r) for r in envelope.rcpt_tos])
            # aiosmtpd serves from its own thread and loop; record the letter on ours.
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._record(letter), self.loop))
        except LetterRefused as exc:
            self.refused("unknown_region")
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


class SmtpListener:
    """Started and stopped with the service when `CRM_INTAKE_SMTP_PORT` is set."""

    def __init__(self, deps: IntakeDeps):
        self.deps = deps
        self.controller: Controller | None = None

    async def start(self) -> None:
        settings = self.deps.settings
        if not settings.smtp_port:
            return
        max_bytes = settings.attachment_max_bytes * 2
        handler = _Handler(lambda letter: record_emailed_letter(self.deps, letter), max_bytes,
                           asyncio.get_running_loop(), self.deps.metrics.letter_refused)
        self.controller = Controller(handler, hostname=settings.smtp_host, port=settings.smtp_port,
                                     data_size_limit=max_bytes)
        self.controller.start()

    async def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

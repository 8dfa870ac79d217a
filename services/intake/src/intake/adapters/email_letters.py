"""An e-mailed letter as intake reads it: sender, subject, text, the scans attached, and
the region its recipient mailbox names (`shenzhen@letters.example.cn`, or an explicit
mailbox → region map). The SMTP listener that receives them is `entrypoints/smtp.py`.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime

from intake.adapters.attachments import sniff_content_type


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
            payload = part.get_payload(decode=True)  # bytes for a leaf part, whatever typeshed says
            data = payload if isinstance(payload, bytes) else b""
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

"""A local mail server that keeps every message it is given, for `make run` and tests.

    crm-stack smtp-sink         (127.0.0.1:8025; CRM_SMTP_SINK_PORT, CRM_SMTP_SINK_DIR)

Each message is written as one ``.eml`` file under ``.data/sinks/mail/`` (open it with any
mail client), with two headers added in front: ``X-Sink-Envelope-From`` and
``X-Sink-Envelope-To`` (the SMTP envelope, which may differ from the headers).
:func:`read_mail` reads them back, newest last, for a test or a person.
No address is written to its log; the files hold them on purpose.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import signal
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("crm_devstack.sinks.smtp")


def default_mail_dir() -> Path:
    from crm_devstack.servers import project_root

    default = Path(os.environ.get("CRM_DATA_DIR", project_root() / ".data")) / "sinks" / "mail"
    return Path(os.environ.get("CRM_SMTP_SINK_DIR", default))


class MailDirHandler:
    def __init__(self, mail_dir: Path):
        self.mail_dir = mail_dir
        mail_dir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        recipients = ", ".join(str(r) for r in envelope.rcpt_tos)
        head = (f"X-Sink-Envelope-From: {envelope.mail_from}\r\n"
                f"X-Sink-Envelope-To: {recipients}\r\n").encode()
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        # Written aside then renamed: a reader never sees half a message.
        partial = self.mail_dir / f".{name}.part"
        partial.write_bytes(head + raw)
        partial.rename(self.mail_dir / name)
        log.info("smtp sink stored a message of %d bytes for %d recipient(s)", len(raw), len(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def start(host: str, port: int, mail_dir: Path) -> Controller:
    """Serve on host:port from a thread of its own (aiosmtpd's Controller); stop() ends it."""
    controller = Controller(MailDirHandler(mail_dir), hostname=host, port=port)
    controller.start()
    return controller


def read_mail(mail_dir: Path, to: str | None = None) -> list[EmailMessage]:
    """Every stored message, oldest first; ``to`` keeps those whose envelope names it."""
    messages = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        envelope_to = [a.strip().lower() for a in str(message.get("X-Sink-Envelope-To", "")).split(",")]
        if to is None or to.lower() in envelope_to:
            messages.append(message)
    return messages


def main(argv: Any = None) -> None:
    host = os.environ.get("CRM_SMTP_SINK_HOST", "127.0.0.1")
    port = int(os.environ.get("CRM_SMTP_SINK_PORT", "8025"))
    mail_dir = default_mail_dir()
    # aiosmtpd's own log names peers and, at debug, envelope addresses: keep it to problems.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = start(host, port, mail_dir)
    print(f"smtp sink: {host}:{port}, mail in {mail_dir}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()

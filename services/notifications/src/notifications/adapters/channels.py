"""The customer channels' gateways, built from settings (the default `gateway_factory`).

The SMS, e-mail and letter adapters are their own modules (sms.py, email.py, letters.py);
a build without one of them leaves that channel unavailable: its messages are retried,
never dropped, and the start-up log says so.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from notifications.adapters.gateways import Gateway, OutboundMessage, SendResult
from notifications.settings import NotificationsSettings

log = logging.getLogger(__name__)


class Unavailable:
    """A channel whose adapter is not installed: every send fails, transiently."""

    def __init__(self, channel: str, why: str):
        self.channel = channel
        self.why = why

    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(accepted=False, error=f"{self.channel} gateway unavailable: {self.why}")

    async def close(self) -> None:
        return None


def _build(channel: str, module: str, cls: str, settings: NotificationsSettings) -> Gateway:
    try:
        factory: Any = getattr(importlib.import_module(f"notifications.adapters.{module}"), cls)
        return factory(settings)  # type: ignore[no-any-return]
    except (ImportError, AttributeError, TypeError) as exc:  # missing, or built another way
        log.warning("%s channel unavailable: %s", channel, exc)
        return Unavailable(channel, str(exc))


class _LetterGateway:
    """Letters join the region's daily print batch; adding one is the provider's acceptance."""

    def __init__(self, batcher: Any):
        self.batcher = batcher

    async def send(self, message: OutboundMessage) -> SendResult:
        return await self.batcher.add(message)  # type: ignore[no-any-return]

    async def close(self) -> None:
        close = getattr(self.batcher, "close", None)
        if close is not None:
            await close()


def default_gateways(settings: NotificationsSettings) -> dict[str, Gateway]:
    letters = _build("letter", "letters", "LetterBatcher", settings)
    return {
        "sms": _build("sms", "sms", "SmsGateway", settings),
        "email": _build("email", "email", "SmtpGateway", settings),
        "letter": letters if isinstance(letters, Unavailable) else _LetterGateway(letters),
    }


def load_factory(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)

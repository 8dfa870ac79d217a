"""The staff channel: a message to a member of staff lands in their console inbox (our own
store), so it is delivered the moment it is accepted."""

from __future__ import annotations

from datetime import UTC, datetime

from notifications.adapters.gateways import OutboundMessage, SendResult
from notifications.adapters.store import StaffInbox


class StaffGateway:
    def __init__(self, inbox: StaffInbox):
        self.inbox = inbox

    async def send(self, message: OutboundMessage) -> SendResult:
        await self.inbox.deliver(message.to, {
            "message_id": message.message_id, "region": message.region, "template": message.template_code,
            "subject": message.subject, "body": message.body, "created_at": datetime.now(UTC),
        })
        return SendResult(accepted=True, provider_ref=message.message_id)

    async def close(self) -> None:
        return None

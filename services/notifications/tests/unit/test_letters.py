from datetime import date
from pathlib import Path
from types import SimpleNamespace

from notifications.adapters.channels import Unavailable, _LetterGateway
from notifications.adapters.gateways import OutboundMessage, SendResult
from notifications.handlers import print_letters


class Batcher:
    def __init__(self):
        self.added, self.rendered = [], []

    async def add(self, message):
        self.added.append(message)
        return SendResult(accepted=True, provider_ref=f"letter-{len(self.added)}")

    async def render(self, region, day):
        self.rendered.append((region, day))
        return Path(f"/tmp/{region}-{day}.pdf")


async def test_letters_join_the_batch_and_the_evening_timer_renders_the_regions_batch():
    batcher = Batcher()
    gateway = _LetterGateway(batcher)
    message = OutboundMessage("m1", "letter", "shenzhen", "zh-CN", "", "milestone.delivery", {}, "项目进展信息", "…",
                              postal_address="碧水湾 3栋 1201", recipient_name="王芳")
    result = await gateway.send(message)
    assert result.accepted and batcher.added == [message]
    await print_letters(SimpleNamespace(gateways={"letter": gateway}), "shenzhen", date(2026, 12, 1))
    assert batcher.rendered == [("shenzhen", date(2026, 12, 1))]


async def test_a_missing_adapter_refuses_transiently_and_renders_nothing():
    gateway = Unavailable("letter", "not installed")
    result = await gateway.send(OutboundMessage("m1", "letter", "shenzhen", "zh-CN", "", "x", {}, "", ""))
    assert not result.accepted and not result.permanent
    await print_letters(SimpleNamespace(gateways={"letter": gateway}), "shenzhen", date(2026, 12, 1))

"""The documentation pages work on an intranet without Internet: everything they load
comes from the service itself."""

from __future__ import annotations

import re

import httpx
import pytest
from crm_contracts.topics import PARTNER_UNITS
from crm_runtime.app import Wiring, create_service_app
from crm_runtime.kafka import Subscription
from crm_runtime.settings import ServiceSettings

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def _handler_free_app():
    async def noop(event, data) -> None:
        return None

    def wire(ctx):
        return Wiring(subscriptions=[Subscription(PARTNER_UNITS).on("crm.partner.unit.delivered.v1", noop)])

    settings = ServiceSettings(CRM_SERVICE_NAME="docs-test")
    return create_service_app(settings, title="docs test", description="d", wire=wire)


@pytest.fixture
async def client():
    # No lifespan: the pages need neither Kafka nor the database.
    transport = httpx.ASGITransport(app=_handler_free_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/asyncapi"])
async def test_page_loads_only_what_the_service_serves(client, page):
    response = await client.get(page)
    assert response.status_code == 200
    body = response.text
    assert not re.search(r"https?://", body), "the page names an outside address"
    assets = ASSET.findall(body)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset


async def test_documents_the_pages_render_are_served(client):
    openapi = (await client.get("/openapi.json")).json()
    assert "/health/ready" in openapi["paths"]
    asyncapi = (await client.get("/asyncapi.json")).json()
    assert any(PARTNER_UNITS in str(ch) for ch in asyncapi["channels"].values())
    # The AsyncAPI page fetches exactly that document.
    assert '"url": "/asyncapi.json"' in (await client.get("/asyncapi")).text
